"""The families and links fitting supports, resolved once to canonical names."""

from __future__ import annotations

from ..errors import ParameterError, did_you_mean, format_names
from ..model.families import family_key

__all__ = ["FIT_FAMILIES", "resolve_family"]

#: Family -> accepted links (default first). The lme4 engine fits the first three (see its module).
FIT_FAMILIES: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity",),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "negative_binomial": ("log",),
    "gamma": ("inverse", "log"),  # inverse first: R's Gamma() default, as in Model
}

def resolve_family(family: object, link: str | None) -> tuple[str, str]:
    """Canonical ``(family, link)``, or a ParameterError naming what is valid.

    Examples
    --------
    >>> resolve_family("Binomial", None)
    ('binomial', 'logit')
    """
    name = getattr(family, "name", family)  # a glmmsim Family object is accepted too
    if link is None and hasattr(family, "link"):
        link = family.link.name
    if not isinstance(name, str):
        raise ParameterError(f"family must be a name such as 'gaussian'; got {type(name).__name__}")
    key = family_key(name)  # the spellings glmmsim's Model accepts
    if key not in FIT_FAMILIES:
        raise ParameterError(
            f"fitting supports family {format_names(FIT_FAMILIES)}; got {name!r}.{did_you_mean(key, FIT_FAMILIES)}"
        )
    links = FIT_FAMILIES[key]
    link = links[0] if link is None else str(link).strip().lower()
    if link not in links:
        raise ParameterError(f"family {key!r} is fitted with link {format_names(links)}; got {link!r}")
    return key, link
