"""FHIR R4 definitions, validation and search-parameter evaluation."""
