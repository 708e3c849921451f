variable "kubeconfig_path" {
  type        = string
  description = "Path of the kubeconfig file that reaches the cluster."
  default     = "~/.kube/config"
}

variable "kube_context" {
  type        = string
  description = "kubeconfig context of the target cluster; scripts/cluster.sh passes kind-voting-app."
  default     = "kind-voting-app"
}

variable "argocd_namespace" {
  type        = string
  description = "Namespace that Argo CD is installed into and where its Applications live."
  default     = "argocd"
}

variable "argocd_chart_version" {
  type        = string
  description = "Exact version of the argo-cd Helm chart (8.5.0 ships Argo CD v3.1.5); Renovate proposes bumps."
  default     = "8.5.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.argocd_chart_version))
    error_message = "argocd_chart_version must be an exact version such as 8.5.0, not a range."
  }
}
