"""Built-in engines: ``glmm`` (Rust, the default) and ``lme4`` (R, the reference)."""
