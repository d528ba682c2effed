"""The CapabilityStatement: exactly what this server supports, built from the same tables the
router and search engine use (http://hl7.org/fhir/R4/capabilitystatement.html)."""

from __future__ import annotations

from functools import cache
from typing import Any

from benhan import __version__
from benhan.fhir.definitions import resource_types
from benhan.store.search import supported_params

INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
RESULT_PARAMS = frozenset(
    {
        "_include",
        "_revinclude",
        "_sort",
        "_count",
        "_offset",
        "_total",
        "_summary",
        "_elements",
        "_has",
    }
)


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "publisher": "benhan",
        "kind": "instance",
        "software": {"name": "benhan", "version": __version__},
        "implementation": {"description": "benhan FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{**_rest(), "security": _security(base)}],
    }


def _security(base: str) -> dict[str, Any]:
    """SMART on FHIR: where to get a token (http://hl7.org/fhir/smart-app-launch/conformance.html);
    clients should read /.well-known/smart-configuration, this is the older way to say it."""
    origin = base.split("/fhir", 1)[0]
    return {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth 2.0 with SMART v2 scopes (client credentials, code + PKCE)",
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "token", "valueUri": f"{origin}/oauth/token"},
                    {"url": "authorize", "valueUri": f"{origin}/oauth/authorize"},
                ],
            }
        ],
    }


@cache
def _rest() -> dict[str, Any]:
    return {
        "mode": "server",
        "resource": [_resource(t) for t in sorted(resource_types())],
        "interaction": [
            {"code": c} for c in ("transaction", "batch", "search-system", "history-system")
        ],
        "searchParam": [
            _param(c, t)
            for c, t in (
                ("_id", "token"),
                ("_lastUpdated", "date"),
                ("_tag", "token"),
                ("_type", "token"),
            )
        ],
        "operation": [
            {
                "name": "validate",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            },
            {
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
            },
        ],
    }


def _resource(rtype: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": c} for c in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchInclude": [f"{rtype}:*"],
        "searchRevInclude": ["*"],
        "searchParam": [_param(c, t) for c, t in supported_params(rtype) if c not in RESULT_PARAMS],
    }
    if rtype == "Patient":
        out["operation"] = [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            },
            {
                "name": "match",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
            },
            {
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
            },
        ]
    if rtype == "Bundle":
        out["operation"] = [
            {"name": "verify", "definition": "https://benhan.vn/fhir/OperationDefinition/verify"}
        ]
    if rtype == "Group":
        out["operation"] = [
            {
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
            }
        ]
    return out


def _param(code: str, ptype: str) -> dict[str, str]:
    return {"name": code, "type": ptype}
