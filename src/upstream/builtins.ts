/**
 * Well-known public registries, reachable through docxy without any config.
 *
 * Token realms and services are left out where the registry announces them in
 * its own `/v2/` challenge (upstream/auth-discovery.ts); Docker Hub's are
 * written out because they are the default and must work before any discovery.
 * `registry` is the host clients use in image names: the path prefix
 * (`/v2/ghcr.io/...`) and containerd's `?ns=ghcr.io` select the upstream by it.
 *
 * nvcr.io is listed but disabled: most of NGC needs an API key and its images
 * run to many gigabytes, so an operator should opt in deliberately.
 */
export interface BuiltinUpstream {
  name: string;
  registry: string;
  url: string;
  authRealm?: string;
  authService?: string;
  autoLibraryPrefix: boolean;
  enabled: boolean;
}

export const BUILTIN_UPSTREAMS: readonly BuiltinUpstream[] = [
  {
    name: "dockerhub",
    registry: "docker.io",
    url: "https://registry-1.docker.io",
    authRealm: "https://auth.docker.io/token",
    authService: "registry.docker.io",
    autoLibraryPrefix: true,
    enabled: true,
  },
  { name: "ghcr", registry: "ghcr.io", url: "https://ghcr.io", autoLibraryPrefix: false, enabled: true },
  { name: "quay", registry: "quay.io", url: "https://quay.io", autoLibraryPrefix: false, enabled: true },
  { name: "gcr", registry: "gcr.io", url: "https://gcr.io", autoLibraryPrefix: false, enabled: true },
  { name: "k8s", registry: "registry.k8s.io", url: "https://registry.k8s.io", autoLibraryPrefix: false, enabled: true },
  { name: "mcr", registry: "mcr.microsoft.com", url: "https://mcr.microsoft.com", autoLibraryPrefix: false, enabled: true },
  { name: "ecr-public", registry: "public.ecr.aws", url: "https://public.ecr.aws", autoLibraryPrefix: false, enabled: true },
  // Both announce their token service in the /v2/ challenge, on another host for Elastic
  // (docker-auth.elastic.co) and for GitLab (gitlab.com/jwt/auth): discovery finds it.
  { name: "elastic", registry: "docker.elastic.co", url: "https://docker.elastic.co", autoLibraryPrefix: false, enabled: true },
  { name: "gitlab", registry: "registry.gitlab.com", url: "https://registry.gitlab.com", autoLibraryPrefix: false, enabled: true },
  { name: "nvcr", registry: "nvcr.io", url: "https://nvcr.io", autoLibraryPrefix: false, enabled: false },
];
