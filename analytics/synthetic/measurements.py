"""Imaging biomarkers as a site's imaging report would give them, without pixels.

A cohort of thousands of patients scanned every year or two is thousands of CT series; a
demo built in minutes cannot render, write, ingest and segment them all. Most patients
with imaging therefore get their biomarkers as *imported measurements*: the values the
feature extractor would report at each scan visit, drawn from the patient's latent stage
and imaging phenotype (:func:`analytics.synthetic.disease.imaging_phenotype`, the same
phenotype the rendered series are drawn from) with a patient's own organ sizes and
realistic measurement noise. They go to ``imaging.csv`` in the cohort CSV format
(``import-cohort``), under the core biomarker names of the feature registry, so the
cohort table reads them as imaging biomarkers (:mod:`analytics.cohort.columns`).

=============================  ==========================================  ==============
column                         truth                                       noise
=============================  ==========================================  ==============
``liver_volume_ml``            patient's healthy volume (1,450 mL men,     CV 4 %
                               1,300 mL women, CV 12 %) x the phenotype's
                               volume factor (steatotic hypertrophy,
                               cirrhotic atrophy)
``spleen_volume_ml``           200 mL men, 175 mL women x the phenotype's  CV 5 %
                               factor: the patient's healthy size
                               (log-normal SD 0.25) and splenomegaly
                               growing with portal hypertension and the
                               patient's portal pressure
``liver_hu_mean``              unenhanced parenchymal attenuation (fat)    SD 2 HU
``spleen_hu_mean``             unenhanced splenic attenuation              SD 2 HU
``liver_spleen_hu_diff``       liver minus spleen, of the two above        (theirs)
``liver_surface_nodularity``   the extractor's LSN score: a floor of       SD 0.04 mm
                               :data:`LSN_FLOOR_MM` plus
                               :data:`LSN_PER_MM` x the surface
                               undulation (mm)
=============================  ==========================================  ==============

The noise sizes are those of repeated CT measurements: volumetry from segmentations
repeats within 3-5 % (Lim et al., AJR 2011; Hagen et al., Eur Radiol 2020 for the
spleen) and attenuation within 1-3 HU on the same scanner. The LSN score's floor, slope
and spread are the extractor's own on rendered series of the default grid (three
anatomies at each undulation of 0.1-2 mm: 0.50-0.57 mm at 0.1, 0.69-0.85 mm at 2.0), so
an imported value reads as the extractor would have measured the same liver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.synthetic.disease import PatientDisease, imaging_phenotype

#: imported biomarker columns, in file order
MEASURED_COLUMNS = ("liver_volume_ml", "spleen_volume_ml", "liver_hu_mean", "spleen_hu_mean",
                    "liver_spleen_hu_diff", "liver_surface_nodularity")
#: the extractor's LSN score of a smooth synthetic liver surface (mm)
LSN_FLOOR_MM = 0.5
#: the extractor's LSN score per mm of the generator's surface undulation (RMS)
LSN_PER_MM = 0.15
_DECIMALS = {"liver_volume_ml": 0, "spleen_volume_ml": 0, "liver_hu_mean": 1,
             "spleen_hu_mean": 1, "liver_spleen_hu_diff": 1, "liver_surface_nodularity": 2}


@dataclass(frozen=True)
class OrganSizes:
    """A patient's healthy liver and spleen volumes (mL), drawn once."""

    liver_ml: float
    spleen_ml: float

    @classmethod
    def draw(cls, rng: np.random.Generator, sex: str) -> OrganSizes:
        """The liver varies here; the spleen's own size is the disease's
        ``spleen_baseline_factor`` (it enters the phenotype's splenomegaly factor)."""
        male = sex == "M"
        liver = (1450.0 if male else 1300.0) * float(np.clip(rng.normal(1.0, 0.12), 0.7, 1.4))
        return cls(round(liver, 1), 200.0 if male else 175.0)


def measure_visit(stage: float, disease: PatientDisease, organs: OrganSizes,
                  rng: np.random.Generator) -> dict[str, float]:
    """The imaging biomarkers of one (unenhanced) scan at latent ``stage``, rounded to
    reporting precision (module docstring)."""
    ph = imaging_phenotype(stage, disease)
    liver_hu = ph.liver_hu_unenhanced + rng.normal(0.0, 2.0)
    spleen_hu = ph.spleen_hu_unenhanced + rng.normal(0.0, 2.0)
    lsn = LSN_FLOOR_MM + LSN_PER_MM * ph.nodularity_mm + rng.normal(0.0, 0.04)
    values = {
        "liver_volume_ml": organs.liver_ml * ph.liver_volume_factor
        * np.exp(rng.normal(0.0, 0.04)),
        "spleen_volume_ml": organs.spleen_ml * ph.spleen_volume_factor
        * np.exp(rng.normal(0.0, 0.05)),
        "liver_hu_mean": liver_hu,
        "spleen_hu_mean": spleen_hu,
        "liver_spleen_hu_diff": liver_hu - spleen_hu,
        "liver_surface_nodularity": max(lsn, 0.05),
    }
    out = {}
    for k, v in values.items():
        d = _DECIMALS[k]
        out[k] = round(float(v)) if d == 0 else round(float(v), d)
    return out


def baseline_fib4(visit: dict) -> float:
    """FIB-4 of a generated visit: age x AST / (platelets x sqrt(ALT)); NaN without labs."""
    labs = visit["labs"]
    try:
        return float(visit["age_years"] * labs["ast_u_l"]
                     / (labs["platelets_10e9_l"] * np.sqrt(labs["alt_u_l"])))
    except (TypeError, ZeroDivisionError):
        return float("nan")
