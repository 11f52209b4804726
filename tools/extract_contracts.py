#!/usr/bin/python3
"""Extract from the providers' OpenAPI documents the request schemas the
tests validate crefinder's requests against: Twilio's CreateMessageRequest,
UpdateMessageRequest (cancelling a scheduled message) and CreateCallRequest,
SendGrid's mail send body, Vapi's CreateCallDTO (with every schema it
references).  Descriptions and examples are dropped to keep them small.

Usage: tools/extract_contracts.py CONTRACTS_DIR   (the providers' OpenAPI documents)
writes test/contracts/*.json.  The sources are MIT-licensed (see
test/contracts/README.md)."""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) != 2:
    sys.exit("usage: tools/extract_contracts.py CONTRACTS_DIR")
SRC = sys.argv[1]
OUT = os.path.join(HERE, "..", "test", "contracts")


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in ("description", "example", "examples")}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def closure(components, roots):
    need, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in need:
            continue
        need.add(name)
        stack += re.findall(r'#/components/schemas/([A-Za-z0-9_.-]+)', json.dumps(components[name]))
    return {n: components[n] for n in sorted(need)}


def write(name, schema):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(strip(schema), f, sort_keys=True, separators=(",", ":"))
        f.write("\n")


twilio = json.load(open(os.path.join(SRC, "twilio", "twilio_api_v2010.json")))
post = twilio["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]


def form_schema(operation):
    """An operation's form body schema with the enums it references."""
    schema = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    refs = re.findall(r'#/components/schemas/([A-Za-z0-9_.-]+)', json.dumps(schema))
    return dict(schema, components={"schemas": closure(twilio["components"]["schemas"], refs)})


write("twilio_create_message.json", form_schema(post))
write("twilio_update_message.json",
      form_schema(twilio["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"]["post"]))
write("twilio_create_call.json",
      form_schema(twilio["paths"]["/2010-04-01/Accounts/{AccountSid}/Calls.json"]["post"]))

sendgrid = json.load(open(os.path.join(SRC, "sendgrid", "tsg_mail_v3.json")))
body = sendgrid["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
refs = re.findall(r'#/components/schemas/([A-Za-z0-9_.-]+)', json.dumps(body))
body = dict(body, components={"schemas": closure(sendgrid["components"]["schemas"], refs)})
write("sendgrid_mail_send.json", body)

vapi = json.load(open(os.path.join(SRC, "vapi", "openapi.json")))
schemas = closure(vapi["components"]["schemas"], ["CreateCallDTO"])
write("vapi_create_call.json", {"$ref": "#/components/schemas/CreateCallDTO",
                                "components": {"schemas": schemas}})
