# glmmsim's lme4 server: one long-lived R process fitting many datasets.
#
# Protocol (Python writes to stdin, this script answers on stdout):
#   a request is one tab-separated header line, sometimes followed by float64 values in binary;
#   every answer is framed by a line "@@BEGIN" and a line "@@END", with "key<TAB>values" lines
#   between them ("error<TAB>message" on failure). Anything else printed on stdout is ignored.
#   DESIGN id n ncol path columns factors formula family link  -- read an n x ncol float64 file
#   FIT id reml n token                  + n doubles (the response)
#   CONTEST id reml ddf n k p token      + n doubles (response) + k*p doubles (L, row by row)
#   LRT id reml n token nested_id        + n doubles (the response): ML log-likelihoods of the full
#                                          and the nested model
#   DROP id | QUIT
# Every fit calls lmer()/glmer() afresh: refit() reported a wrong REML log-likelihood and stuck at
# zero variances. The last fit of each design is kept with the token Python gave it, so that a test
# of that fit (CONTEST, LRT) reuses it instead of fitting again; a token that does not match (R was
# restarted) fits the response again, the same way, so the answer does not depend on what R kept.

out <- stdout()
emit <- function(...) cat(..., "\n", sep = "", file = out)
num <- function(x) paste(sprintf("%.17g", as.numeric(x)), collapse = "\t")
txt <- function(x) gsub("[\t\r\n]+", " ", as.character(x))

needed <- c("lme4", "lmerTest", "pbkrtest")
# installed? (pbkrtest is loaded only when a Kenward-Roger test asks for it)
missing <- needed[!nzchar(vapply(needed, function(p) system.file(package = p), character(1)))]
if (length(missing)) {
  emit("@@MISSING\t", paste(missing, collapse = ","))
  quit(save = "no", status = 0)
}
suppressPackageStartupMessages({ library(lme4); library(lmerTest) })
emit("@@READY\tR ", format(getRversion()), "\tlme4 ", format(packageVersion("lme4")),
     "\tlmerTest ", format(packageVersion("lmerTest")), "\tpbkrtest ", format(packageVersion("pbkrtest")))
flush(out)

con <- file("stdin", open = "rb")
designs <- new.env()

family_object <- function(family, link) {
  switch(family, binomial = binomial(link = link), poisson = poisson(link = link),
         stop("unsupported family ", family))
}

last <- new.env()  # id -> list(token, reml, model): the last fit of each design

# lmerTest::lmer adds what Satterthwaite and Kenward-Roger tests need (a Hessian): only fits whose
# df are reported or tested pay for it; the ML fits of a likelihood-ratio test use lme4::lmer.
# `start` (theta) starts the optimizer at a nearby fit's variance parameters.
fit_model <- function(d, y, reml, start = NULL, test_df = TRUE) {
  dat <- d$data
  dat$Y <- y
  notes <- character(0)
  keep_warning <- function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") }
  keep_message <- function(m) { notes <<- c(notes, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }
  m <- withCallingHandlers({
    if (d$family == "gaussian") {
      lmer_fun <- if (test_df) lmerTest::lmer else lme4::lmer
      lmer_fun(d$formula, data = dat, REML = reml, start = start,
               control = lmerControl(check.nobs.vs.nRE = "warning", check.nobs.vs.nlev = "warning"))
    } else {
      lme4::glmer(d$formula, data = dat, family = family_object(d$family, d$link),
                  start = if (is.null(start)) NULL else list(theta = start),
                  control = glmerControl(check.nobs.vs.nRE = "warning", check.nobs.vs.nlev = "warning"))
    }
  }, warning = keep_warning, message = keep_message)
  list(model = m, notes = unique(notes))
}

# the model of the fit Python calls `token`: kept from FIT, or fitted again as FIT fitted it
fitted_model <- function(id, d, y, reml, token) {
  kept <- if (exists(id, envir = last, inherits = FALSE)) get(id, envir = last, inherits = FALSE) else NULL
  if (!is.null(kept) && identical(kept$token, token) && kept$reml == reml) return(kept$model)
  fit_model(d, y, reml)$model
}

report <- function(d, fitted) {
  m <- fitted$model
  beta <- lme4::fixef(m)
  v <- as.matrix(vcov(m))
  df <- rep(NaN, length(beta))
  if (d$family == "gaussian") {
    co <- summary(m)$coefficients
    if ("df" %in% colnames(co)) df <- co[names(beta), "df"]
  }
  emit("names\t", paste(txt(names(beta)), collapse = "\t"))
  emit("beta\t", num(beta))
  emit("vcov\t", num(v[names(beta), names(beta)]))
  emit("df\t", num(df))
  emit("loglik\t", num(logLik(m)))
  emit("reml\t", as.integer(lme4::isREML(m)))
  emit("sigma\t", num(sigma(m)))
  emit("nobs\t", nobs(m))
  vc <- VarCorr(m)
  for (g in names(vc)) {
    cv <- as.matrix(vc[[g]])
    emit("covnames\t", g, "\t", paste(txt(rownames(cv)), collapse = "\t"))
    emit("cov\t", g, "\t", num(cv))
  }
  conv <- m@optinfo$conv
  lme4_msgs <- conv$lme4$messages
  # as simr: a fit that produced estimates is kept, a convergence warning is recorded beside it
  # (warned); a failure is a fit with no estimate
  warned <- (!is.null(conv$opt) && conv$opt != 0) || any(!grepl("singular", lme4_msgs))
  emit("converged\t", as.integer(all(is.finite(beta)) && all(is.finite(v))))
  emit("warned\t", as.integer(warned))
  emit("singular\t", as.integer(lme4::isSingular(m)))
  for (n in unique(c(fitted$notes, lme4_msgs))) emit("warning\t", txt(n))
}

answer <- function(expr) {
  emit("@@BEGIN")
  tryCatch(expr, error = function(e) emit("error\t", txt(conditionMessage(e))))
  emit("@@END")
  flush(out)
}

repeat {
  line <- readLines(con, n = 1, warn = FALSE)
  if (length(line) == 0) break
  f <- strsplit(line, "\t", fixed = TRUE)[[1]]
  cmd <- f[1]
  if (cmd == "QUIT") break
  if (cmd == "DESIGN") {
    answer({
      n <- as.integer(f[3]); ncol <- as.integer(f[4])
      values <- readBin(f[5], "double", n = n * ncol)
      data <- as.data.frame(matrix(values, nrow = n, ncol = ncol))
      names(data) <- strsplit(f[6], ",", fixed = TRUE)[[1]]
      for (g in strsplit(f[7], ",", fixed = TRUE)[[1]]) data[[g]] <- factor(data[[g]])
      assign(f[2], list(data = data, formula = as.formula(f[8]), family = f[9], link = f[10]), envir = designs)
      emit("ok\t", f[2])
    })
  } else if (cmd == "FIT") {
    y <- readBin(con, "double", n = as.integer(f[4]))
    answer({
      d <- get(f[2], envir = designs, inherits = FALSE)
      fitted <- fit_model(d, y, f[3] == "1")
      assign(f[2], list(token = f[5], reml = f[3] == "1", model = fitted$model), envir = last)
      report(d, fitted)
    })
  } else if (cmd == "CONTEST") {
    n <- as.integer(f[5]); k <- as.integer(f[6]); p <- as.integer(f[7])
    y <- readBin(con, "double", n = n)
    L <- matrix(readBin(con, "double", n = k * p), nrow = k, ncol = p, byrow = TRUE)
    answer({
      d <- get(f[2], envir = designs, inherits = FALSE)
      m <- fitted_model(f[2], d, y, f[3] == "1", f[8])
      res <- lmerTest::contest(m, L, ddf = f[4], joint = TRUE)
      emit("F\t", num(res[["F value"]][1]))
      emit("dendf\t", num(res[["DenDF"]][1]))
      emit("p\t", num(res[["Pr(>F)"]][1]))
    })
  } else if (cmd == "LRT") {
    y <- readBin(con, "double", n = as.integer(f[4]))
    answer({
      d <- get(f[2], envir = designs, inherits = FALSE)
      nested <- get(f[6], envir = designs, inherits = FALSE)
      m <- fitted_model(f[2], d, y, f[3] == "1", f[5])
      # the full model by ML, started at the REML fit's theta (one short optimisation, not a fresh fit)
      if (lme4::isREML(m)) m <- fit_model(d, y, FALSE, start = lme4::getME(m, "theta"), test_df = FALSE)$model
      # the nested model has the same random terms: start it at the full model's theta
      r <- fit_model(nested, y, FALSE, start = lme4::getME(m, "theta"), test_df = FALSE)$model
      emit("full\t", num(logLik(m)))
      emit("nested\t", num(logLik(r)))
    })
  } else if (cmd == "DROP") {
    if (exists(f[2], envir = designs, inherits = FALSE)) rm(list = f[2], envir = designs)
    if (exists(f[2], envir = last, inherits = FALSE)) rm(list = f[2], envir = last)
  }
}
