"""The lab catalogue's result units as UCUM (http://unitsofmeasure.org/ucum.html), for Quantity."""

from __future__ import annotations

# result_unit of the lab catalogue → UCUM code.
UCUM_OF = {
    "g/L": "g/L", "G/L": "10*9/L", "mm/h": "mm/h", "INR": "{INR}", "s": "s", "mmol/L": "mmol/L",
    "µmol/L": "umol/L", "U/L": "U/L", "%": "%", "mg/L": "mg/L", "ng/L": "ng/L",
    "mIU/L": "m[IU]/L", "pmol/L": "pmol/L", "ng/mL": "ng/mL",
}  # fmt: skip
