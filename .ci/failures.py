"""Print the failed and errored tests of a JUnit XML report, one line each: `FAILED|ERROR id: first line`."""

import sys
import xml.etree.ElementTree as ET

for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    for outcome, word in (("failure", "FAILED"), ("error", "ERROR")):
        found = case.find(outcome)
        if found is not None:
            message = (found.get("message") or "").strip().splitlines()
            print(f"{word} {case.get('classname')}::{case.get('name')}: {message[0][:200] if message else ''}")
