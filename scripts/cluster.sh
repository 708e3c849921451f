#!/usr/bin/env bash
# A local kind cluster with Argo CD syncing overlays/dev from git, made the way Terraform makes any cluster's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cluster="voting-app"
context="kind-${cluster}"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

usage() {
  cat <<USAGE
Usage: $(basename "$0") up|down|status

  up      create the kind cluster "${cluster}" (scripts/kind-cluster.yaml) if it is missing,
          then terraform apply: Argo CD and the root Application
  down    delete the kind cluster, and with it all that Terraform and Argo CD made in it,
          then remove the local Terraform state that described it
  status  the Argo CD Applications and the pods of voting-app-dev

Needs docker, kind, kubectl and terraform on PATH.
USAGE
}

need() {
  local missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    echo "missing on PATH: ${missing[*]}" >&2
    exit 1
  fi
}

up() {
  need docker kind kubectl terraform
  if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    kind create cluster --config "$here/kind-cluster.yaml" --wait 120s
  fi
  terraform -chdir="$root/terraform" init -input=false
  # kind writes its context into the first file of $KUBECONFIG, or ~/.kube/config.
  local kubeconfig="${KUBECONFIG:-}"
  kubeconfig="${kubeconfig%%:*}"
  terraform -chdir="$root/terraform" apply -input=false -auto-approve \
    -var "kube_context=${context}" -var "kubeconfig_path=${kubeconfig:-$HOME/.kube/config}"
  local tf=(terraform -chdir="$root/terraform" output -raw)
  cat <<DONE

Argo CD is syncing overlays/dev into voting-app-dev. To watch it:
  $("${tf[@]}" argocd_port_forward)
  open $("${tf[@]}" argocd_ui_address) as user admin, with the password from:
  $("${tf[@]}" argocd_admin_password_command)
DONE
}

down() {
  need kind
  kind delete cluster --name "$cluster"
  rm -f "$root/terraform/terraform.tfstate" "$root/terraform/terraform.tfstate.backup"
}

status() {
  need kubectl
  kubectl --context "$context" -n argocd get applications.argoproj.io
  kubectl --context "$context" -n voting-app-dev get pods
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
