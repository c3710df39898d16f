"""Ingest: sources (upload, folder, zip, DICOMweb), parsing, series assembly, masks,
de-identification and the atomic commit to the store."""
