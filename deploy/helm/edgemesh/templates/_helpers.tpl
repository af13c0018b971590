{{/* Metadata labels. The selector labels stay EdgeMesh's (k8s-app/kubeedge) so that a release
moved from EdgeMesh's chart keeps its DaemonSet: a DaemonSet's selector cannot change. */}}
{{- define "edgemesh.labels" -}}
app.kubernetes.io/name: edgemesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "edgemesh.agent.selector" -}}
k8s-app: kubeedge
kubeedge: edgemesh-agent
{{- end }}

{{- define "edgemesh.hub.selector" -}}
k8s-app: kubeedge
kubeedge: edgemesh-hub
{{- end }}

{{- define "edgemesh.agent.name" -}}{{ .Release.Name }}-agent{{- end }}
{{- define "edgemesh.hub.name" -}}{{ .Release.Name }}-hub{{- end }}

{{- define "edgemesh.agent.pskSecret" -}}
{{- .Values.agent.pskSecret | default (printf "%s-agent-psk" .Release.Name) -}}
{{- end }}

{{/* The agent's EdgeMeshAgent config: EdgeMesh's sections as given, relayNodes and meshCIDRConfig
folded in as EdgeMesh's chart does, and our keys (adminAddr, kernelFastPath). */}}
{{- define "edgemesh.agent.config" -}}
{{- $a := .Values.agent -}}
{{- $cfg := dict -}}
{{- with $a.kubeAPIConfig }}{{ $_ := set $cfg "kubeAPIConfig" (deepCopy .) }}{{ end -}}
{{- $common := deepCopy ($a.commonConfig | default dict) -}}
{{- if and $a.metrics $a.metrics.port (not (hasKey $common "adminAddr")) -}}
{{- $_ := set $common "adminAddr" (printf "%s:%v" ($a.metrics.bindAddress | default "127.0.0.1") $a.metrics.port) -}}
{{- end -}}
{{- if $common }}{{ $_ := set $cfg "commonConfig" $common }}{{ end -}}
{{- $modules := deepCopy ($a.modules | default dict) -}}
{{- if $a.relayNodes -}}
{{- $tunnel := get $modules "edgeTunnel" | default dict -}}
{{- $_ := set $tunnel "relayNodes" $a.relayNodes -}}
{{- $_ := set $modules "edgeTunnel" $tunnel -}}
{{- end -}}
{{- if not (kindIs "invalid" $a.kernelFastPath) -}}
{{- $proxy := get $modules "edgeProxy" | default dict -}}
{{- if not (hasKey $proxy "kernelFastPath") }}{{ $_ := set $proxy "kernelFastPath" $a.kernelFastPath }}{{ end -}}
{{- $_ := set $modules "edgeProxy" $proxy -}}
{{- end -}}
{{- if or $a.cloudCIDR $a.edgeCIDR -}}
{{- $cni := get $modules "edgeCNI" | default dict -}}
{{- $_ := set $cni "meshCIDRConfig" (dict "cloudCIDR" ($a.cloudCIDR | default list) "edgeCIDR" ($a.edgeCIDR | default list)) -}}
{{- $_ := set $modules "edgeCNI" $cni -}}
{{- end -}}
{{- if $modules }}{{ $_ := set $cfg "modules" $modules }}{{ end -}}
{{- toYaml $cfg -}}
{{- end }}

{{- define "edgemesh.gateway.selector" -}}
k8s-app: kubeedge
kubeedge: edgemesh-gateway
{{- end }}

{{- define "edgemesh.gateway.name" -}}{{ .Release.Name }}-gateway{{- end }}

{{/* The gateway's EdgeMeshGateway config: EdgeMesh's sections as given, relayNodes folded in as
EdgeMesh's gateway chart does. */}}
{{- define "edgemesh.gateway.config" -}}
{{- $g := .Values.gateway -}}
{{- $cfg := dict -}}
{{- with $g.kubeAPIConfig }}{{ $_ := set $cfg "kubeAPIConfig" (deepCopy .) }}{{ end -}}
{{- $common := deepCopy ($g.commonConfig | default dict) -}}
{{- if and $g.metrics $g.metrics.port (not (hasKey $common "adminAddr")) -}}
{{- $_ := set $common "adminAddr" (printf "%s:%v" ($g.metrics.bindAddress | default "127.0.0.1") $g.metrics.port) -}}
{{- end -}}
{{- if $common }}{{ $_ := set $cfg "commonConfig" $common }}{{ end -}}
{{- $modules := deepCopy ($g.modules | default dict) -}}
{{- if $g.relayNodes -}}
{{- $tunnel := deepCopy ($modules.edgeTunnel | default dict) -}}
{{- $_ := set $tunnel "relayNodes" $g.relayNodes -}}
{{- $_ := set $modules "edgeTunnel" $tunnel -}}
{{- end -}}
{{- if $modules }}{{ $_ := set $cfg "modules" $modules }}{{ end -}}
{{- toYaml $cfg -}}
{{- end }}
