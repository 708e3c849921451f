locals {
  # The one place a fork edits: argocd/source.yaml. The root Application and, through
  # Kustomize replacements, every child Application and AppProject read it; repo_url and
  # target_revision override it for one cluster (the root patches the copy Argo CD renders).
  source = yamldecode(file("${path.module}/../argocd/source.yaml")).data

  root_application = {
    name           = "voting-app-root"
    repoURL        = coalesce(var.repo_url, local.source.repoURL)
    targetRevision = coalesce(var.target_revision, local.source.targetRevision)
    path           = "argocd"
    environment    = var.environment
  }
}

resource "helm_release" "argocd" {
  name             = "argocd"
  repository       = "https://argoproj.github.io/argo-helm"
  chart            = "argo-cd"
  version          = var.argocd_chart_version
  namespace        = var.argocd_namespace
  create_namespace = true
  wait             = true
  timeout          = 600
  values           = [file("${path.module}/values/argocd.yaml")]
}

# A local chart so the Application is created only after Argo CD's CRDs exist: a
# kubernetes_manifest would need the Application CRD at plan time, before the first apply.
resource "helm_release" "root" {
  name      = "voting-app-root"
  chart     = "${path.module}/charts/root-app"
  namespace = var.argocd_namespace
  values    = [yamlencode(local.root_application)]

  depends_on = [helm_release.argocd]
}
