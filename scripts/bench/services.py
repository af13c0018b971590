"""Writes N Services (+ one EndpointSlice each) as one multi-document manifest on stdout.

usage: services.py N BACKEND_IP[,BACKEND_IP...]
Service bench-I gets ClusterIP 10.97.0.0 + I (inside 10.96.0.0/12), port 80 -> BACKEND_IP:8080
(one ready endpoint per BACKEND_IP).
"""
import ipaddress
import json
import sys

count, backends = int(sys.argv[1]), sys.argv[2].split(",")
base = ipaddress.IPv4Address("10.97.0.0")
docs = []
for i in range(count):
    name = f"bench-{i}"
    docs.append(json.dumps({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"clusterIP": str(base + i), "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    docs.append(json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-x", "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in backends],
    }))
print("\n---\n".join(docs))
