"""``hepatrack synth``: write a synthetic longitudinal cohort (DICOM CT + SEG, CSVs, truth).

Values come from ``--config FILE.toml`` (a ``[cohort]`` table, see
``sample_data/demo.toml``) when given, then from the flags, then from the defaults
(12 patients, seed 7, all with imaging).
"""

from __future__ import annotations

import argparse

from analytics.cli import EXIT_OK, CommandResult, command
from analytics.config import Settings
from analytics.synthetic import CohortConfig, generate_cohort, load_cohort_config
from analytics.synthetic.config import with_overrides


def config_from_args(args: argparse.Namespace) -> CohortConfig:
    """The cohort config selected by ``--config`` and the flags."""
    flags = {
        "n_patients": getattr(args, "patients", None),
        "seed": getattr(args, "seed", None),
        "imaging_patients": getattr(args, "imaging_patients", None),
        "full": True if getattr(args, "full", False) else None,
    }
    path = getattr(args, "config", None)
    if path:
        return load_cohort_config(path, **flags)
    return with_overrides(CohortConfig(), **flags)


@command("synth")
def synth_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    cfg = config_from_args(args)
    manifest = generate_cohort(args.out, cfg, workers=getattr(args, "workers", None) or 1)
    info = manifest.summary()
    events = ", ".join(f"{k} {v}" for k, v in info["events"].items())
    summary = (f"wrote {info['patients']} patients ({info['imaging_patients']} with imaging), "
               f"{info['visits']} visits, {info['series']} CT series + SEG "
               f"({info['instances']} instances) to {info['out_dir']} in "
               f"{info['seconds']:.1f} s\noutcomes: {events}")
    return CommandResult(info, summary, EXIT_OK)
