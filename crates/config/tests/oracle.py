# Differential-test oracle: runs carbon 1.1's own config readers (Debian graphite-carbon under
# /usr/bin/python3) on the files the Rust tests wrote, and prints what carbon computed as JSON.
# Input (stdin): {"kind": ..., "dir": tempdir, ...}; output (stdout): JSON. Test harness only.
import json, os, re, sys, configparser

req = json.load(sys.stdin)
kind = req["kind"]
os.environ.pop("GRAPHITE_STORAGE_DIR", None)
os.environ.pop("GRAPHITE_CONF_DIR", None)


def err(e):
    return {"error": "%s: %s" % (type(e).__name__, e)}


def database():
    from carbon import conf, state
    from carbon.database import WhisperDatabase
    path = os.path.join(req["dir"], "db-carbon.conf")
    with open(path, "w") as f:
        f.write("[cache]\n")
    os.environ["GRAPHITE_ROOT"] = req["dir"]
    s = conf.read_config("carbon-cache", {"config": path, "instance": None, "pidfile": None, "logdir": None})
    # carbon.storage reads CONF_DIR from the global settings when it is imported.
    conf.settings.update(s)
    state.database = WhisperDatabase(s)


out = None
if kind == "carbon_conf":
    from carbon import conf
    out = []
    for case in req["cases"]:
        # carbon's own scripts pass no ROOT_DIR: GRAPHITE_ROOT comes from the environment.
        os.environ["GRAPHITE_ROOT"] = case["root"]
        try:
            s = conf.read_config(case["program"], {"config": case["path"], "instance": case["instance"],
                                                   "pidfile": None, "logdir": None})
            out.append({k: repr(v) for k, v in s.items()})
        except BaseException as e:
            out.append(err(e))
elif kind == "ini":
    out = []
    for text in req["texts"]:
        p = configparser.ConfigParser()
        try:
            p.read_string(text)
            secs = {}
            for name in p.sections():
                try:
                    secs[name] = [[k, v] for k, v in p.items(name)]
                except Exception as e:
                    secs[name] = "interpolation error"
            out.append({"sections": secs})
        except Exception as e:
            out.append(err(e))
elif kind == "schemas":
    database()
    from carbon import storage
    storage.STORAGE_SCHEMAS_CONFIG = req["path"]
    try:
        schemas = storage.loadStorageSchemas()
        res = []
        for m in req["metrics"]:
            for s in schemas:
                if s.matches(m):
                    res.append([s.name, [list(a.getTuple()) for a in s.archives]])
                    break
        out = {"names": [s.name for s in schemas], "metrics": res}
    except BaseException as e:
        out = err(e)
elif kind == "aggregation":
    database()
    from carbon import storage
    storage.STORAGE_AGGREGATION_CONFIG = req["path"]
    try:
        schemas = storage.loadAggregationSchemas()
        res = []
        for m in req["metrics"]:
            for s in schemas:
                if s.matches(m):
                    res.append([s.name, s.archives[0], s.archives[1]])
                    break
        out = {"names": [s.name for s in schemas], "metrics": res}
    except BaseException as e:
        out = err(e)
elif kind == "relay":
    from carbon.routers import RelayRulesRouter
    try:
        router = RelayRulesRouter({"relay-rules": req["path"]})
        for rule in router.rules:
            for d in rule.destinations:
                router.addDestination(d)
        out = {"metrics": [[list(d) for d in router.getDestinations(m)] for m in req["metrics"]],
               "count": len(router.rules)}
    except BaseException as e:
        out = err(e)
elif kind == "aggregation_rules":
    from carbon.aggregator.rules import RuleManager, AGGREGATION_METHODS
    RuleManager.rules_file = req["path"]
    RuleManager.rules_last_read = 0.0
    try:
        RuleManager.read_rules()
        out = {"regexes": [r.regex.pattern for r in RuleManager.rules],
               "metrics": [[r.get_aggregate_metric(m) for r in RuleManager.rules] for m in req["metrics"]],
               "methods": {name: [f(list(v)) for v in req["values"]] for name, f in AGGREGATION_METHODS.items()}}
    except BaseException as e:
        out = err(e)
elif kind == "agg_lines":
    from carbon.aggregator.rules import RuleManager
    out = []
    for line in req["lines"]:
        try:
            rule = RuleManager.parse_definition(line)
        except BaseException as e:
            out.append(err(e))
            continue
        outputs = []
        for m in req["metrics"]:
            try:
                outputs.append(rule.get_aggregate_metric(m))
            except BaseException as e:
                outputs.append({"error": type(e).__name__})
        out.append({"regex": rule.regex.pattern, "outputs": outputs})
elif kind == "rewrite":
    from carbon.rewrite import RewriteRuleManager
    RewriteRuleManager.rules_file = req["path"]
    RewriteRuleManager.rules_last_read = 0.0
    RewriteRuleManager.clear()
    try:
        RewriteRuleManager.read_rules()
        res = []
        for m in req["metrics"]:
            row = []
            for rs in ("pre", "post"):
                x = m
                for rule in RewriteRuleManager.rules(rs):
                    x = rule.apply(x)
                row.append(x)
            res.append(row)
        out = {"metrics": res, "counts": [len(RewriteRuleManager.rules("pre")), len(RewriteRuleManager.rules("post"))]}
    except BaseException as e:
        out = err(e)
elif kind == "regexlist":
    from carbon.regexlist import RegexList
    lst = RegexList()
    lst.list_file = req["path"]
    lst.read_list()
    out = {"count": len(lst.regex_list), "metrics": [m in lst for m in req["metrics"]]}
elif kind == "regex":
    out = []
    for case in req["cases"]:
        try:
            r = re.compile(case["pattern"])
        except Exception as e:
            out.append(err(e))
            continue
        res = {"search": [bool(r.search(t)) for t in case["texts"]]}
        if case.get("repl") is not None:
            try:
                res["sub"] = [r.sub(case["repl"], t) for t in case["texts"]]
            except Exception as e:
                res["sub"] = err(e)
        out.append(res)
print(json.dumps(out))
