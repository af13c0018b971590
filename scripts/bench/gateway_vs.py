"""Prints N Services + Endpoints + VirtualServices (host vs-I.bench.example) on edgemesh-gateway."""
import sys

n = int(sys.argv[1])
for i in range(n):
    print(f"""---
apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: default}}
spec:
  clusterIP: 10.97.{i // 250}.{i % 250 + 1}
  ports: [{{name: http, port: 80, targetPort: 8080, protocol: TCP}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: svc-{i}, namespace: default}}
subsets:
  - addresses: [{{ip: 192.0.2.11}}]
    ports: [{{name: http, port: 8080, protocol: TCP}}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {{name: vs-{i}, namespace: default}}
spec:
  gateways: [edgemesh-gateway]
  hosts: [vs-{i}.bench.example]
  http:
    - route:
        - destination: {{host: svc-{i}, port: {{number: 80}}}}""")
