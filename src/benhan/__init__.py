"""benhan: electronic medical record and provincial health-information exchange on FHIR R4."""

__version__ = "0.1.0"
