"""Print the project's runtime requirements from pyproject.toml, one per line, so images can
install dependencies in a layer of their own (cached until pyproject.toml or constraints.txt
change). `--without NAME` leaves a dependency out: the gateway image has no CrewAI."""

import argparse
import re
import sys
import tomllib

parser = argparse.ArgumentParser()
parser.add_argument("--without", action="append", default=[])
args = parser.parse_args()
with open("pyproject.toml", "rb") as handle:
    requirements = tomllib.load(handle)["project"]["dependencies"]
for requirement in requirements:
    name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower()
    if name not in args.without:
        sys.stdout.write(requirement + "\n")
