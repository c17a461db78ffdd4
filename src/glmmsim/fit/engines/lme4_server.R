# glmmsim's lme4 server: one long-lived R process fitting many datasets.
#
# Protocol (Python writes to stdin, this script answers on stdout):
#   a request is one tab-separated header line, sometimes followed by float64 values in binary;
#   every answer is framed by a line "@@BEGIN" and a line "@@END", with "key<TAB>values" lines
#   between them ("error<TAB>message" on failure). Anything else printed on stdout is ignored.
#   DESIGN id n ncol path columns factors formula family link  -- read an n x ncol float64 file
#   FIT id reml n                        + n doubles (the response)
#   CONTEST id reml ddf n k p            + n doubles (response) + k*p doubles (L, row by row)
#   DROP id | QUIT
# Every fit calls lmer()/glmer() afresh: refit() reported a wrong REML log-likelihood and stuck at
# zero variances.

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

fit_model <- function(d, y, reml) {
  dat <- d$data
  dat$Y <- y
  notes <- character(0)
  keep_warning <- function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") }
  keep_message <- function(m) { notes <<- c(notes, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }
  m <- withCallingHandlers({
    if (d$family == "gaussian") {
      lmerTest::lmer(d$formula, data = dat, REML = reml,
                     control = lmerControl(check.nobs.vs.nRE = "warning", check.nobs.vs.nlev = "warning"))
    } else {
      lme4::glmer(d$formula, data = dat, family = family_object(d$family, d$link),
                  control = glmerControl(check.nobs.vs.nRE = "warning", check.nobs.vs.nlev = "warning"))
    }
  }, warning = keep_warning, message = keep_message)
  list(model = m, notes = unique(notes))
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
  failed <- !is.null(conv$opt) && conv$opt != 0
  failed <- failed || any(!grepl("singular", lme4_msgs))
  emit("converged\t", as.integer(!failed))
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
      report(d, fit_model(d, y, f[3] == "1"))
    })
  } else if (cmd == "CONTEST") {
    n <- as.integer(f[5]); k <- as.integer(f[6]); p <- as.integer(f[7])
    y <- readBin(con, "double", n = n)
    L <- matrix(readBin(con, "double", n = k * p), nrow = k, ncol = p, byrow = TRUE)
    answer({
      d <- get(f[2], envir = designs, inherits = FALSE)
      m <- fit_model(d, y, f[3] == "1")$model
      res <- lmerTest::contest(m, L, ddf = f[4], joint = TRUE)
      emit("F\t", num(res[["F value"]][1]))
      emit("dendf\t", num(res[["DenDF"]][1]))
      emit("p\t", num(res[["Pr(>F)"]][1]))
    })
  } else if (cmd == "DROP") {
    if (exists(f[2], envir = designs, inherits = FALSE)) rm(list = f[2], envir = designs)
  }
}
