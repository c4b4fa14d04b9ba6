# mypy: ignore-errors
# ruff: noqa
# Guest program: runs inside the WASM sandbox, not in the host.
import json
import sys
from datetime import datetime

DAY_FIRST = ["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d %b %Y", "%d %B %Y",
             "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%B %d %Y", "%Y%m%d", "%Y/%m/%d"]
MONTH_FIRST = ["%m/%d/%Y", "%m-%d-%Y"]


def main():
    request = json.loads(sys.stdin.read())
    if isinstance(request, str):
        request = {"date": request}
    if not isinstance(request, dict) or not isinstance(request.get("date"), str):
        sys.exit("input must be a date string or {\"date\": string}")
    text = " ".join(request["date"].replace(",", ", ").split()).replace(" ,", ",")
    formats = MONTH_FIRST + DAY_FIRST if request.get("us") else DAY_FIRST + MONTH_FIRST
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        print(json.dumps({"date": parsed.strftime("%Y-%m-%d"), "weekday": parsed.strftime("%A")}))
        return
    sys.exit(f"unrecognised date: {request['date']!r}")


main()
