# mypy: ignore-errors
# ruff: noqa
# Guest program: runs inside the WASM sandbox, not in the host.
import json
import sys

LENGTH = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048,
          "yd": 0.9144, "mi": 1609.344}
MASS = {"mg": 1e-6, "g": 0.001, "kg": 1.0, "t": 1000.0, "oz": 0.028349523125,
        "lb": 0.45359237}
TEMPERATURE = ("C", "F", "K")


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def to_kelvin(v, unit):
    if unit == "C":
        return v + 273.15
    if unit == "F":
        return (v - 32) * 5 / 9 + 273.15
    return v


def from_kelvin(k, unit):
    if unit == "C":
        return k - 273.15
    if unit == "F":
        return (k - 273.15) * 9 / 5 + 32
    return k


request = json.loads(sys.stdin.read())
if not isinstance(request, dict):
    fail("input must be {\"value\": number, \"from\": unit, \"to\": unit}")
value, src, dst = request.get("value"), request.get("from"), request.get("to")
if not isinstance(value, (int, float)) or isinstance(value, bool):
    fail("value must be a number")
if src in TEMPERATURE and dst in TEMPERATURE:
    result = from_kelvin(to_kelvin(value, src), dst)
else:
    table = None
    for t in (LENGTH, MASS):
        if src in t and dst in t:
            table = t
    if table is None:
        fail("cannot convert " + str(src) + " to " + str(dst))
    result = value * table[src] / table[dst]
print(json.dumps({"value": round(result, 6), "unit": dst}))
