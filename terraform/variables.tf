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

variable "environment" {
  type        = string
  description = "Which cluster this is: dev syncs argocd/clusters/dev (the dev Application only), prod syncs argocd/clusters/prod (the platform, then the prod Application)."
  default     = "dev"

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "repo_url" {
  type        = string
  description = "Git repository Argo CD syncs from; null reads repoURL from argocd/source.yaml (scripts/cluster.sh passes the in-cluster git server)."
  default     = null
}

variable "target_revision" {
  type        = string
  description = "Branch, tag or commit Argo CD syncs; null reads targetRevision from argocd/source.yaml."
  default     = null
}
