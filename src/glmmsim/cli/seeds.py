"""The one seed of ``glmmsim power`` and ``glmmsim recover``: the root of the study's seed tree.

A power analysis or a recovery study draws a new population (levels of every grouping
factor) and new noise for each replicate from one root seed: ``--seed N`` on the command
line, ``power.seed`` / ``recovery.seed`` in the spec (default 1). The spec's ``seeds:``
section means what it means in ``simulate``: ``seeds.design`` draws the random parts of the
design (order, missingness, covariates), the same at every replicate; when it is not given,
the design is drawn from the root too, so the root alone reproduces a study.
``seeds.population`` and ``seeds.noise`` pick the population and noise of the *one* dataset
``simulate`` writes; a study draws its own for every replicate, so setting them on the
command line would change nothing and is an error, as is the old ``--study-seed`` given
together with ``--seed`` (alone it still works, with a deprecation warning).
"""

from __future__ import annotations

import argparse
import warnings
from typing import TYPE_CHECKING

from ..errors import GlmmsimWarning, ParameterError
from ..randomness.seeds import SeedTree

if TYPE_CHECKING:
    from ..study.spec import Study

__all__ = ["add_root_seed_options", "root_seed", "check_seed_overrides", "seeded"]

#: Spec paths a study never reads: each replicate draws its own population and noise.
_UNUSED = {("seeds",): "seeds", ("seeds", "population"): "seeds.population", ("seeds", "noise"): "seeds.noise"}


def add_root_seed_options(p: argparse.ArgumentParser, section: str) -> None:
    """``--seed N`` (the root) and the deprecated ``--study-seed N`` of power/recover."""
    p.add_argument("--seed", dest="root_seed", type=int, metavar="N",
                   help=f"root of the study's seeds: every replicate's population and noise, and the design "
                        f"when seeds.design is not set ({section}.seed in the spec; default 1)")
    p.add_argument("--study-seed", dest="study_seed", type=int, metavar="N", help="deprecated: use --seed")
    p.set_defaults(seed=None)  # the spec's seeds are loaded unchanged (see check_seed_overrides)


def root_seed(args: argparse.Namespace) -> int | None:
    """The root given on the command line (None: the spec's, or the default)."""
    if args.study_seed is not None:
        if args.root_seed is not None:
            raise ParameterError(
                f"--study-seed {args.study_seed} and --seed {args.root_seed} both set the root of the study's "
                f"seeds; give --seed only (--study-seed is its old name)", parameter="seed",
            )
        warnings.warn(GlmmsimWarning("--study-seed is deprecated; use --seed (the same root of the study's seeds)",
                                     parameter="seed"), stacklevel=2)
        return args.study_seed
    if args.root_seed is not None and args.root_seed < 0:
        raise ParameterError(f"--seed must be a non-negative whole number; got {args.root_seed}", parameter="seed")
    return args.root_seed


def check_seed_overrides(command: str, given: list[tuple[str, str]]) -> None:
    """Refuse settings of seeds a study would ignore (population and noise), before any work.

    ``given``: (option, ``PATH=VALUE`` or ``PATH``) pairs, e.g. ``("--set", "seeds.noise=3")``.

    >>> check_seed_overrides("power", [("--set", "seeds.design=3")])
    >>> check_seed_overrides("power", [("--set", "seeds.noise=3")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.errors.ParameterError: --set seeds.noise=3: glmmsim power does not use seeds.noise: ...
    """
    for option, text in given:
        keys = tuple(k.strip() for k in text.partition("=")[0].split("."))
        name = _UNUSED.get(keys)
        if name is None:
            continue
        section = "recovery" if command == "recover" else command
        raise ParameterError(
            f"{option} {text}: glmmsim {command} does not use {name}: every replicate draws a new population "
            f"and new noise from the study's root seed; set that with --seed N (in the spec: {section}.seed), and the "
            f"design's random parts with --set seeds.design=N",
            path=keys, key=keys[-1],
        )


def seeded(study: Study, root: int) -> Study:
    """``study`` with its design drawn from ``root`` when the spec gives no ``seeds.design``.

    A design without random parts is the same whatever its seed; a design read from a file has none.
    """
    if study.seeds.get("design") is not None or study.design_type == "file":
        return study
    return study.with_seeds(design=SeedTree(root).child("design").key)
