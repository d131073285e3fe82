"""Round-trip versioned-object primitives through upstream Magnum's classes.

Reads one JSON primitive per line on stdin; for each, rebuilds the object
with upstream's obj_from_primitive and prints its obj_to_primitive() as one
JSON line (or {"error": ...}).
"""
import json
import sys

from magnum.objects import base

for line in sys.stdin:
    try:
        obj = base.MagnumObject.obj_from_primitive(json.loads(line))
        print(json.dumps(obj.obj_to_primitive()), flush=True)
    except Exception as e:  # report, do not stop
        print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}), flush=True)
