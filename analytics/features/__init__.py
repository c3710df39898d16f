"""Imaging biomarkers: segmentation fallback, liver and spleen measurements, vessels,
nodularity, texture, IBSI radiomics and the batch runner."""
