# mypy: ignore-errors
# ruff: noqa
# Guest program: runs inside the WASM sandbox, not in the host.
import csv
import io
import json
import sys


def number(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def main():
    request = json.loads(sys.stdin.read())
    if isinstance(request, str):
        request = {"csv": request}
    if not isinstance(request, dict) or not isinstance(request.get("csv"), str):
        sys.exit("input must be a CSV string or {\"csv\": text}")
    delimiter = request.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        sys.exit("delimiter must be a single character")
    rows = list(csv.reader(io.StringIO(request["csv"]), delimiter=delimiter))
    rows = [r for r in rows if r]
    if not rows:
        print("[]")
        return
    header, body = rows[0], rows[1:]
    convert = number if request.get("numbers") else (lambda v: v)
    out = [{k: convert(v) for k, v in zip(header, row)} for row in body]
    print(json.dumps(out))


main()
