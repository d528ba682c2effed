"""Catalogues: ICD-10 (QĐ 4469), curated drugs and services, and facility catalogue import."""

from __future__ import annotations

from benhan.catalog.drugs import Drug, drugs
from benhan.catalog.fhir import drug_to_medication, service_coding
from benhan.catalog.icd10 import Icd10Code, icd10
from benhan.catalog.importer import CatalogImport, load_catalog
from benhan.catalog.services import Service, services

__all__ = [
    "CatalogImport",
    "Drug",
    "Icd10Code",
    "Service",
    "drug_to_medication",
    "drugs",
    "icd10",
    "load_catalog",
    "service_coding",
    "services",
]
