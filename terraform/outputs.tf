output "argocd_port_forward" {
  description = "Run this to reach the Argo CD UI from your machine."
  value       = "kubectl --context ${var.kube_context} -n ${var.argocd_namespace} port-forward svc/argocd-server 8090:443"
}

output "argocd_ui_address" {
  description = "The Argo CD UI while the port-forward runs (a self-signed certificate: accept it once)."
  value       = "https://localhost:8090"
}

output "argocd_admin_password_command" {
  description = "Prints the initial admin password (user admin); delete the secret once you have changed it."
  value       = "kubectl --context ${var.kube_context} -n ${var.argocd_namespace} get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d; echo"
}

output "root_application" {
  description = "The app-of-apps that Terraform applied once; Argo CD manages everything under argocd/ from here."
  value       = "${local.root_application.repoURL} @ ${local.root_application.targetRevision}, path ${local.root_application.path} with clusters/${var.environment}"
}
