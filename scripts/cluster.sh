#!/usr/bin/env bash
# The local GitOps loop: a kind cluster, Argo CD installed by Terraform, and a git server in the
# cluster that Argo CD syncs from, fed with this working copy's commits and images built from them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cluster="${CLUSTER_NAME:-voting-app}"
context="kind-${cluster}"
# kind writes its context into the first file of $KUBECONFIG, or ~/.kube/config.
kubeconfig="${KUBECONFIG:-$HOME/.kube/config}"
kubeconfig="${kubeconfig%%:*}"
services=(vote worker result)
image_prefix="voting-app-local"
# What Argo CD reads: the git server of deploy/gitserver, one branch.
served_url="http://git.git.svc.cluster.local/voting-app.git"
served_branch="main"
kind_config="${KIND_CONFIG:-$here/kind-cluster.yaml}"
terraform_dir="${TERRAFORM_DIR:-$root/terraform}"
# The working copy whose current commit is served (the e2e serves a clone with a commit of its own).
source_repo="${SOURCE_REPO:-$root}"
# The host ports kind maps (dev vote, dev result, prod gateway HTTPS), read from the kind config.
mapfile -t host_ports < <(sed -n 's/^ *hostPort: *\([0-9][0-9]*\).*/\1/p' "$kind_config")
# The prod hostnames, as the Gateway's HTTPS listeners and routes name them.
prod_hosts=(vote.localhost result.localhost)
argocd_ui_port=8090
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

usage() {
  cat <<USAGE
Usage: $(basename "$0") up [dev|prod] | push | wait | down | status

  up [dev|prod]  create the kind cluster "${cluster}" from scripts/kind-cluster.yaml if it is
                 missing (host ports ${host_ports[*]} must be free), start the git server of
                 deploy/gitserver, build the three images from the current commit and load them
                 into kind, push that commit plus one commit pinning those images in
                 overlays/<env> to the git server, install Argo CD and the root Application
                 with Terraform (environment, repo_url, target_revision), then wait until the
                 Application voting-app-<env> is Synced and Healthy and print the URLs.
                 prod first creates the Secrets prod-db and prod-redis in voting-app-secrets
                 with random values, if they are missing. Default: dev.
  push           the local merge: rebuild the images whose inputs changed in the current commit,
                 push that commit plus the pin to the git server, and ask Argo CD to refresh
  wait           wait until the Application is Synced and Healthy (WAIT_SECONDS, default 1800)
  down           delete the kind cluster, and with it all that Terraform and Argo CD made in it,
                 then the Terraform state that described it
  status         the Argo CD Applications and the pods of the environment's namespace

Argo CD serves commits, not the working tree: commit first, then push.
CLUSTER_NAME (default voting-app) names the cluster; the end-to-end tests use their own.
KUBECONFIG (its first file, default ~/.kube/config) receives the context kind-<name>.
Needs docker, kind, kubectl, terraform, git and python3 (with PyYAML: make install) on PATH.
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

kc() {
  kubectl --kubeconfig "$kubeconfig" --context "$context" "$@"
}

say() {
  printf '==> %s\n' "$*" >&2
}

cluster_exists() {
  local clusters
  clusters="$(kind get clusters 2>/dev/null)"
  grep -qx "$cluster" <<<"$clusters"
}

# A port is taken when something on this machine accepts a connection on it.
ports_taken() {
  local port taken=()
  for port in "${host_ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
      taken+=("$port")
    fi
  done
  echo "${taken[*]}"
}

create_cluster() {
  if cluster_exists; then
    say "kind cluster ${cluster} exists: reusing it"
    kind export kubeconfig --name "$cluster" --kubeconfig "$kubeconfig" >/dev/null
    return
  fi
  local taken
  taken="$(ports_taken)"
  if [[ -n "$taken" ]]; then
    echo "127.0.0.1 port(s) ${taken} already in use; kind needs ${host_ports[*]} for the cluster's" >&2
    echo "NodePorts (another kind cluster, e.g. the e2e's or make cluster's, or a local server?)." >&2
    echo "Free them (make cluster-down, or stop what listens there) and run again." >&2
    exit 1
  fi
  say "creating kind cluster ${cluster}"
  kind create cluster --name "$cluster" --config "$kind_config" --kubeconfig "$kubeconfig" --wait 120s
}

# The environment a cluster was made for, as `up` recorded it in the cluster (empty if none).
recorded_environment() {
  kc -n git get configmap served -o jsonpath='{.data.environment}' 2>/dev/null || true
}

# A tag that changes exactly when what goes into the service's image changes at that commit.
input_hash() {
  local work="$1" service="$2" path ids=()
  # What apps/Dockerfile copies (apps/Dockerfile.dockerignore lets through): the workspace's
  # pyproject files and lock, the contract library, and this service's own folder.
  for path in apps/Dockerfile apps/Dockerfile.dockerignore "apps/${service}" libs uv.lock pyproject.toml \
    apps/vote/pyproject.toml apps/worker/pyproject.toml apps/result/pyproject.toml tools/devstack/pyproject.toml; do
    ids+=("${path}=$(git -C "$work" rev-parse --verify --quiet "HEAD:${path}" || echo none)")
  done
  printf '%s\n' "${ids[@]}" | git hash-object --stdin | cut -c1-12
}

build_and_load() {
  local image="$1" dockerfile="$2" context_dir="$3"
  shift 3
  if docker image inspect "$image" >/dev/null 2>&1; then
    say "${image}: inputs unchanged, not rebuilt"
  else
    say "building ${image}"
    docker build -f "$dockerfile" "$@" -t "$image" "$context_dir" >&2
  fi
  kind load docker-image --name "$cluster" "$image" >/dev/null
}

# A checkout of the current commit in a temp folder: what is built, applied and served.
work=""
forward_pid=""
stop_forward() {
  if [[ -n "$forward_pid" ]]; then
    kill "$forward_pid" 2>/dev/null || true
    wait "$forward_pid" 2>/dev/null || true
    forward_pid=""
  fi
}
cleanup() {
  stop_forward
  if [[ -n "$work" ]]; then
    rm -rf "$work"
  fi
}
trap cleanup EXIT

checkout_current_commit() {
  if [[ -n "$(git -C "$source_repo" status --porcelain --untracked-files=no)" ]]; then
    echo "note: uncommitted changes are not served; Argo CD deploys commits (commit, then make cluster-push)" >&2
  fi
  work="$(mktemp -d)"
  git clone --quiet --shared --no-checkout "$source_repo" "$work/repo"
  git -C "$work/repo" checkout --quiet --detach "$(git -C "$source_repo" rev-parse HEAD)"
}

start_git_server() {
  local repo="$work/repo" tag
  tag="$(git -C "$repo" rev-parse HEAD:deploy/gitserver | cut -c1-12)"
  build_and_load "${image_prefix}/git-server:${tag}" "$repo/deploy/gitserver/Dockerfile" "$repo/deploy/gitserver"
  mkdir -p "$work/gitserver"
  cat >"$work/gitserver/kustomization.yaml" <<KUSTOMIZATION
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../repo/deploy/gitserver
images:
  - name: git-server
    newName: ${image_prefix}/git-server
    newTag: "${tag}"
KUSTOMIZATION
  say "starting the git server (namespace git)"
  kc apply -k "$work/gitserver" >/dev/null
  kc -n git rollout status deployment/git-server --timeout=300s >/dev/null
}

# The served commit: the current commit, plus one commit pinning the images just loaded into kind.
pin_and_push() {
  local env="$1" repo="$work/repo" specs=() service tag port="" _
  for service in "${services[@]}"; do
    tag="$(input_hash "$repo" "$service")"
    build_and_load "${image_prefix}/${service}:${tag}" "$repo/apps/Dockerfile" "$repo" --build-arg "SERVICE=${service}"
    specs+=("${service}=${image_prefix}/${service}:${tag}")
  done
  python3 "$root/scripts/gitops_images.py" set "$repo/overlays/${env}" "${specs[@]}"
  git -C "$repo" -c user.name="make cluster" -c user.email="cluster@voting-app.invalid" \
    commit --quiet --all --allow-empty --message "local: overlays/${env} runs the images built from $(git -C "$repo" rev-parse --short HEAD)"

  # kubectl itself, not the kc function: a backgrounded function is a subshell, and killing
  # that would leave the port-forward running.
  kubectl --kubeconfig "$kubeconfig" --context "$context" -n git port-forward svc/git :80 >"$work/forward.log" 2>&1 &
  forward_pid=$!
  for _ in $(seq 60); do
    port="$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/forward.log")"
    [[ -n "$port" ]] && break
    sleep 1
  done
  if [[ -z "$port" ]]; then
    echo "the port-forward to the git server did not start:" >&2
    cat "$work/forward.log" >&2
    exit 1
  fi
  say "pushing $(git -C "$repo" rev-parse --short HEAD) (${specs[*]}) to ${served_url} ${served_branch}"
  git -C "$repo" push --quiet --force "http://127.0.0.1:${port}/voting-app.git" "HEAD:refs/heads/${served_branch}"
  stop_forward
  kc -n git create configmap served --from-literal=environment="$env" \
    --from-literal=commit="$(git -C "$repo" rev-parse HEAD)" --dry-run=client -o yaml | kc apply -f - >/dev/null
}

random_secret() {
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

# What the ClusterSecretStore reads in prod; made once, never overwritten.
prod_secrets() {
  kc create namespace voting-app-secrets --dry-run=client -o yaml | kc apply -f - >/dev/null
  local dir="$work/secrets"
  (umask 077 && mkdir -p "$dir")
  if ! kc -n voting-app-secrets get secret prod-db >/dev/null 2>&1; then
    printf 'votes' >"$dir/username"
    printf 'votes' >"$dir/database"
    random_secret >"$dir/password"
    kc -n voting-app-secrets create secret generic prod-db \
      --from-file=username="$dir/username" --from-file=password="$dir/password" --from-file=database="$dir/database" >/dev/null
    say "created Secret voting-app-secrets/prod-db (random password)"
  fi
  if ! kc -n voting-app-secrets get secret prod-redis >/dev/null 2>&1; then
    random_secret >"$dir/redis"
    kc -n voting-app-secrets create secret generic prod-redis --from-file=password="$dir/redis" >/dev/null
    say "created Secret voting-app-secrets/prod-redis (random password)"
  fi
}

install_argocd() {
  local env="$1" tf=(terraform -chdir="$terraform_dir")
  say "installing Argo CD and the root Application with Terraform (workspace ${cluster})"
  # The selected workspace may be one whose cluster is gone: start from the default one.
  rm -f "$terraform_dir/.terraform/environment"
  "${tf[@]}" init -input=false >/dev/null
  "${tf[@]}" workspace select -or-create "$cluster" >/dev/null
  "${tf[@]}" apply -input=false -auto-approve \
    -var "kube_context=${context}" -var "kubeconfig_path=${kubeconfig}" \
    -var "environment=${env}" -var "repo_url=${served_url}" -var "target_revision=${served_branch}"
}

wait_synced() {
  local app="voting-app-$1" limit="${WAIT_SECONDS:-1800}" state="" last=""
  local deadline=$((SECONDS + limit))
  say "waiting for Argo CD: ${app} Synced and Healthy (up to ${limit} s)"
  while ((SECONDS < deadline)); do
    state="$(kc -n argocd get applications.argoproj.io "$app" \
      -o jsonpath='{.status.sync.status} {.status.health.status}' 2>/dev/null || true)"
    if [[ "$state" != "$last" ]]; then
      echo "  ${app}: ${state:-not there yet} (after ${SECONDS} s)" >&2
      last="$state"
    fi
    [[ "$state" == "Synced Healthy" ]] && return 0
    sleep 10
  done
  echo "${app} is not Synced and Healthy after ${limit} s. Look at:" >&2
  echo "  kubectl --context ${context} -n argocd get applications.argoproj.io" >&2
  echo "  kubectl --context ${context} -n argocd describe applications.argoproj.io ${app}" >&2
  exit 1
}

print_urls() {
  local env="$1"
  if [[ "$env" == prod ]]; then
    cat <<PROD

voting-app-prod is Synced and Healthy, behind the Gateway on 127.0.0.1:8443:
  vote:   https://${prod_hosts[0]}:8443
  result: https://${prod_hosts[1]}:8443
Their certificate comes from the cluster's local CA (ClusterIssuer voting-app). Trust it:
  kubectl --context ${context} -n cert-manager get secret voting-app-local-ca -o jsonpath='{.data.ca\.crt}' | base64 -d > voting-app-local-ca.pem
  curl --cacert voting-app-local-ca.pem https://${prod_hosts[0]}:8443/
(or import the PEM into your browser as an authority; curl -k skips the check)
PROD
  else
    cat <<DEV

voting-app-dev is Synced and Healthy:
  vote:   http://127.0.0.1:8080
  result: http://127.0.0.1:8081
DEV
  fi
  cat <<ARGOCD
Argo CD UI: kubectl --context ${context} -n argocd port-forward svc/argocd-server ${argocd_ui_port}:443
  then https://localhost:${argocd_ui_port} (self-signed), user admin, password:
  kubectl --context ${context} -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d; echo
Change something, commit, then: make cluster-push
ARGOCD
}

up() {
  local env="${1:-dev}" recorded
  case "$env" in
    dev | prod) ;;
    *)
      echo "unknown environment '${env}': dev or prod" >&2
      exit 2
      ;;
  esac
  need docker kind kubectl terraform git python3
  create_cluster
  recorded="$(recorded_environment)"
  if [[ -n "$recorded" && "$recorded" != "$env" ]]; then
    echo "cluster ${cluster} runs ${recorded}, not ${env}: make cluster-down first" >&2
    exit 1
  fi
  checkout_current_commit
  if [[ "$env" == prod ]]; then
    prod_secrets
  fi
  start_git_server
  pin_and_push "$env"
  install_argocd "$env"
  wait_synced "$env"
  print_urls "$env"
}

push() {
  need docker kind kubectl git python3
  if ! cluster_exists; then
    echo "no kind cluster ${cluster}: make cluster first" >&2
    exit 1
  fi
  local env reconciliation
  env="$(recorded_environment)"
  if [[ -z "$env" ]]; then
    echo "cluster ${cluster} has no served copy yet: make cluster first" >&2
    exit 1
  fi
  checkout_current_commit
  pin_and_push "$env"
  kc -n argocd annotate applications.argoproj.io --all argocd.argoproj.io/refresh=normal --overwrite >/dev/null
  reconciliation="$(sed -n 's/^ *timeout\.reconciliation: *\([0-9]*\)s.*/\1/p' "$terraform_dir/values/argocd.yaml")"
  cat <<PUSHED

Pushed. Argo CD was asked to refresh now and will sync within about ${reconciliation:-180} s at the latest;
watch voting-app-${env} in the UI, or run: bash scripts/cluster.sh wait
PUSHED
}

wait_cmd() {
  need kubectl
  local env
  env="$(recorded_environment)"
  wait_synced "${env:-dev}"
}

down() {
  need kind
  kind delete cluster --name "$cluster" --kubeconfig "$kubeconfig"
  rm -rf "$terraform_dir/terraform.tfstate.d/${cluster}"
}

status() {
  need kubectl
  local env
  env="$(recorded_environment)"
  kc -n argocd get applications.argoproj.io
  kc -n "voting-app-${env:-dev}" get pods
}

case "${1:-}" in
  up) up "${2:-dev}" ;;
  push) push ;;
  wait) wait_cmd ;;
  down) down ;;
  status) status ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
