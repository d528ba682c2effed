"""OAuth 2 and SMART on FHIR endpoints (being written)."""

from fastapi import APIRouter

router = APIRouter()
