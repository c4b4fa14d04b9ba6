"""Print a one-line health summary from a telemetry file."""

import json
import sys


def main(path: str) -> int:
    total = failures = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            total += 1
            failures += not event.get("success", True)
    print(f"{failures}/{total} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
