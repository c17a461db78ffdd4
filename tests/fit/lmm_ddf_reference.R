# Reference numbers for tests/fit/test_lmm_ddf.py: lme4 fits, lmerTest Satterthwaite and
# pbkrtest Kenward-Roger tests of given contrasts, and the design (X, random-effects blocks).
# Usage: Rscript lmm_ddf_reference.R cases.json out.json
suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
})
args <- commandArgs(trailingOnly = TRUE)
cases <- fromJSON(args[1], simplifyVector = FALSE)

contrast_matrix <- function(rows, cols) {
  L <- matrix(0, nrow = length(rows), ncol = length(cols), dimnames = list(NULL, cols))
  for (r in seq_along(rows)) for (nm in names(rows[[r]])) {
    if (!nm %in% cols) stop("unknown column ", nm, "; columns: ", paste(cols, collapse = ", "))
    L[r, nm] <- rows[[r]][[nm]]
  }
  L
}

term_blocks <- function(fit) {
  flist <- getME(fit, "flist")
  assign <- attr(flist, "assign")
  cnms <- getME(fit, "cnms")
  zt <- getME(fit, "Zt")
  gp <- getME(fit, "Gp")
  lapply(seq_along(cnms), function(t) {
    k <- length(cnms[[t]])
    f <- flist[[assign[t]]]
    nlev <- nlevels(f)
    sel <- do.call(rbind, rep(list(diag(k)), nlev))
    zraw <- as.matrix(Matrix::crossprod(zt[(gp[t] + 1):gp[t + 1], , drop = FALSE], sel))
    list(k = k, nlevels = nlev, codes = as.integer(f) - 1L, zraw = as.vector(zraw))
  })
}

out <- lapply(cases, function(cs) {
  data <- read.csv(cs$csv, stringsAsFactors = TRUE)
  fit <- lmerTest::lmer(as.formula(cs$formula), data = data, REML = cs$reml)
  X <- getME(fit, "X")
  # vcovAdj once per fit: KRmodcomp(fit, L) is .KR_adjust(vcovAdj(fit), vcov(fit), L, fixef(fit), 0)
  phi_a <- if (cs$reml) pbkrtest::vcovAdj(fit) else NULL
  tests <- lapply(cs$contrasts, function(ct) {
    L <- contrast_matrix(ct$rows, colnames(X))
    sat <- suppressWarnings(lmerTest::contestMD(fit, L))
    res <- list(name = ct$name, L = as.vector(t(L)), m = nrow(L),
                sat_F = sat[["F value"]], sat_ndf = sat[["NumDF"]], sat_ddf = sat[["DenDF"]])
    if (nrow(L) == 1) {
      one <- lmerTest::contest1D(fit, drop(L))
      res$sat_t <- one[["t value"]]
      res$sat_df1 <- one[["df"]]
    }
    if (cs$reml) {
      kr <- pbkrtest:::.KR_adjust(phi_a, vcov(fit), pbkrtest:::force_full_rank(L), fixef(fit), 0)
      res$kr_F <- kr$Fstat
      res$kr_ndf <- kr$ndf
      res$kr_ddf <- kr$ddf
      if (nrow(L) == 1) res$kr_lb_ddf <- pbkrtest::Lb_ddf(L, vcov(fit), phi_a)
    }
    res
  })
  list(name = cs$name, reml = cs$reml, theta = unname(getME(fit, "theta")), sigma = sigma(fit),
       beta = unname(fixef(fit)), singular = isSingular(fit), n = nrow(X), p = ncol(X),
       colnames = colnames(X), X = as.vector(X), blocks = term_blocks(fit), tests = tests)
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null"), args[2])
