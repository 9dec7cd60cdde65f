#!/usr/bin/env python3
"""Checks Istio resources against the fields Istio documents for them.

kubernetes-validate knows only core kinds, so gatehouse's Istio manifests are
checked here: every field must be one Istio's reference documents for its kind
(IstioOperator meshConfig.extensionProviders, ServiceEntry,
AuthorizationPolicy), enum values must be documented ones, and gatehouse's own
rules hold: every ext_authz provider has an explicit timeout, fails closed
(failOpen: false) with statusOnError "503", and every CUSTOM policy names a
provider that is declared.

Usage: check_istio.py FILE...  (exit 1 with one line per problem)
"""

import re
import sys

import yaml

ANY = None  # a scalar of any value


def listof(schema):
    return [schema]


METADATA = {"name": ANY, "namespace": ANY, "labels": ANY, "annotations": ANY}

# istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig-ExtensionProvider
EXT_AUTHZ_GRPC = {
    "service": ANY,
    "port": ANY,
    "timeout": ANY,
    "failOpen": ANY,
    "clearRouteCache": ANY,
    "statusOnError": ANY,
    "includeRequestBodyInCheck": {
        "maxRequestBytes": ANY,
        "allowPartialMessage": ANY,
        "packAsBytes": ANY,
    },
}
EXT_AUTHZ_HTTP = dict(
    EXT_AUTHZ_GRPC,
    pathPrefix=ANY,
    includeRequestHeadersInCheck=listof(ANY),
    includeAdditionalHeadersInCheck=ANY,
    headersToUpstreamOnAllow=listof(ANY),
    headersToDownstreamOnDeny=listof(ANY),
    headersToDownstreamOnAllow=listof(ANY),
)
EXTENSION_PROVIDER = {
    "name": ANY,
    "envoyExtAuthzGrpc": EXT_AUTHZ_GRPC,
    "envoyExtAuthzHttp": EXT_AUTHZ_HTTP,
}
ISTIO_OPERATOR = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "profile": ANY,
        "hub": ANY,
        "tag": ANY,
        "revision": ANY,
        "namespace": ANY,
        "components": ANY,
        "values": ANY,
        "meshConfig": {
            "extensionProviders": listof(EXTENSION_PROVIDER),
            "accessLogFile": ANY,
            "accessLogEncoding": ANY,
            "defaultConfig": ANY,
            "enableTracing": ANY,
            "outboundTrafficPolicy": ANY,
        },
    },
}

# istio.io/latest/docs/reference/config/networking/service-entry/
SERVICE_ENTRY = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "hosts": listof(ANY),
        "addresses": listof(ANY),
        "ports": listof({"number": ANY, "protocol": ANY, "name": ANY, "targetPort": ANY}),
        "location": ANY,
        "resolution": ANY,
        "endpoints": listof(
            {
                "address": ANY,
                "ports": ANY,
                "labels": ANY,
                "network": ANY,
                "locality": ANY,
                "weight": ANY,
                "serviceAccount": ANY,
            }
        ),
        "workloadSelector": {"labels": ANY},
        "exportTo": listof(ANY),
        "subjectAltNames": listof(ANY),
    },
}

# istio.io/latest/docs/reference/config/security/authorization-policy/
OPERATION = {
    key: listof(ANY)
    for key in [
        "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths",
    ]
}
SOURCE = {
    key: listof(ANY)
    for key in [
        "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
        "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks",
        "notRemoteIpBlocks",
    ]
}
TARGET_REF = {"group": ANY, "kind": ANY, "name": ANY, "namespace": ANY}
AUTHORIZATION_POLICY = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "selector": {"matchLabels": ANY},
        "targetRef": TARGET_REF,
        "targetRefs": listof(TARGET_REF),
        "rules": listof(
            {
                "from": listof({"source": SOURCE}),
                "to": listof({"operation": OPERATION}),
                "when": listof({"key": ANY, "values": listof(ANY), "notValues": listof(ANY)}),
            }
        ),
        "action": ANY,
        "provider": {"name": ANY},
    },
}

KINDS = {
    "IstioOperator": (ISTIO_OPERATOR, {"install.istio.io/v1alpha1"}),
    "ServiceEntry": (SERVICE_ENTRY, {"networking.istio.io/v1", "networking.istio.io/v1beta1"}),
    "AuthorizationPolicy": (
        AUTHORIZATION_POLICY,
        {"security.istio.io/v1", "security.istio.io/v1beta1"},
    ),
}

ENUMS = {
    ("ServiceEntry", "spec.resolution"): {"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"},
    ("ServiceEntry", "spec.location"): {"MESH_EXTERNAL", "MESH_INTERNAL"},
    ("AuthorizationPolicy", "spec.action"): {"ALLOW", "DENY", "AUDIT", "CUSTOM"},
}
PORT_PROTOCOLS = {"HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"}
DURATION = re.compile(r"^[0-9]+(\.[0-9]+)?(ms|s|m|h)$")


def walk(value, schema, path, problems):
    """Every mapping key must be in the schema; recurse into known shapes."""
    if schema is ANY:
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            problems.append(f"{path}: must be a list")
            return
        for index, item in enumerate(value):
            walk(item, schema[0], f"{path}[{index}]", problems)
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a mapping")
        return
    for key, item in value.items():
        if key not in schema:
            problems.append(f"{path}.{key}: not a documented field".lstrip("."))
            continue
        walk(item, schema[key], f"{path}.{key}".lstrip("."), problems)


def get(document, dotted):
    for key in dotted.split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def check(document, where, problems, providers, custom_policies):
    kind = document.get("kind")
    if kind not in KINDS:
        problems.append(f"{where}: kind {kind!r} is not an Istio kind this checker knows")
        return
    schema, versions = KINDS[kind]
    if document.get("apiVersion") not in versions:
        problems.append(f"{where}: apiVersion {document.get('apiVersion')!r} is not one of {sorted(versions)}")
    if not get(document, "metadata.name"):
        problems.append(f"{where}: metadata.name is required")
    found = []
    walk(document, schema, "", found)
    problems.extend(f"{where}: {problem}" for problem in found)
    for (enum_kind, dotted), allowed in ENUMS.items():
        value = get(document, dotted)
        if enum_kind == kind and value is not None and value not in allowed:
            problems.append(f"{where}: {dotted} {value!r} is not one of {sorted(allowed)}")

    if kind == "ServiceEntry":
        for port in get(document, "spec.ports") or []:
            if port.get("protocol") not in PORT_PROTOCOLS:
                problems.append(f"{where}: port protocol {port.get('protocol')!r} is not documented")
            if not isinstance(port.get("number"), int):
                problems.append(f"{where}: port number must be an integer")
        if not get(document, "spec.hosts"):
            problems.append(f"{where}: spec.hosts is required")
    if kind == "IstioOperator":
        for provider in get(document, "spec.meshConfig.extensionProviders") or []:
            name = provider.get("name")
            kinds = [key for key in provider if key != "name"]
            if not name or len(kinds) != 1:
                problems.append(f"{where}: provider {name!r} needs a name and exactly one type")
                continue
            providers.add(name)
            settings = provider[kinds[0]]
            if kinds[0].startswith("envoyExtAuthz"):
                label = f"{where}: provider {name}"
                if not DURATION.match(str(settings.get("timeout", ""))):
                    problems.append(f"{label}: needs an explicit timeout such as 0.25s")
                if settings.get("failOpen") is not False:
                    problems.append(f"{label}: failOpen must be false (fail closed)")
                if settings.get("statusOnError") != "503":
                    problems.append(f"{label}: statusOnError must be the string \"503\"")
                if not isinstance(settings.get("port"), int) or not settings.get("service"):
                    problems.append(f"{label}: service and an integer port are required")
    if kind == "AuthorizationPolicy" and get(document, "spec.action") == "CUSTOM":
        name = get(document, "spec.provider.name")
        if not name:
            problems.append(f"{where}: action CUSTOM needs provider.name")
        else:
            custom_policies.append((where, name))
    elif kind == "AuthorizationPolicy" and get(document, "spec.provider") is not None:
        problems.append(f"{where}: provider is only valid with action CUSTOM")


def main(paths):
    problems, providers, custom_policies = [], set(), []
    for path in paths:
        with open(path, encoding="utf-8") as file:
            documents = [d for d in yaml.safe_load_all(file) if d is not None]
        for index, document in enumerate(documents):
            check(document, f"{path}#{index}", problems, providers, custom_policies)
    for where, name in custom_policies:
        if name not in providers:
            problems.append(f"{where}: provider {name!r} is not declared in any extensionProviders")
    for problem in problems:
        print(problem)
    if not paths:
        print("usage: check_istio.py FILE...")
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
