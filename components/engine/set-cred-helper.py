"""Dockyard: sets credHelpers[REGISTRY] = HELPER in a docker client config.json.

Usage: set-cred-helper.py CONFIG_JSON REGISTRY HELPER; prints the new file on stdout,
keeping every other setting. Exits non-zero (the file unchanged) when it is not a JSON
object. Run by steps/registry-auth.sh with the python3 that cloud-init itself runs on.
"""
import json, sys
path, registry, helper = sys.argv[1:4]
try:
    with open(path, encoding="utf-8") as f:
        text = f.read()
except FileNotFoundError:
    text = ""
cfg = json.loads(text) if text.strip() else {}
if not isinstance(cfg, dict):
    sys.exit(path + " does not hold a JSON object")
helpers = cfg.setdefault("credHelpers", {})
if not isinstance(helpers, dict):
    sys.exit(path + ": credHelpers is not a JSON object")
helpers[registry] = helper
sys.stdout.write(json.dumps(cfg, indent=2) + "\n")
