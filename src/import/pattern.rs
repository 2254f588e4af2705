//! Image patterns: Connaisseur policy patterns and notation registry scopes as trustwatch globs
//! (`spec.images[].pattern`), and Connaisseur's own rule selection, so that an import can check
//! that the rule trustwatch picks for an image is the one Connaisseur picked.
//!
//! trustwatch (`crate::crd::pattern_matches`): a glob on the normalized repository
//! (`docker.io/library/nginx`, no tag); `*` stays within one path segment, a `**` segment spans
//! any number of segments; the most specific match wins (most literal characters, then fewest
//! `**`, then fewest `*`, then the first listed).

/// Which Connaisseur generation wrote the values: their pattern matching differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnaisseurVersion {
    /// Connaisseur 2.x (Python): top-level `validators` and `policy`.
    V2,
    /// Connaisseur 3.x (Go): `application.validators` and `application.policy`.
    V3,
}

/// A Connaisseur pattern as a trustwatch pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The trustwatch glob on repositories.
    pub pattern: String,
    /// The tag part of the Connaisseur pattern when it filters tags (anything but `*`): trustwatch
    /// rules cover every tag of a repository, so the rule becomes broader.
    pub tag: Option<String>,
    /// Where the trustwatch pattern matches differently, one sentence each.
    pub notes: Vec<String>,
}

const GLOB_SYNTAX: &[char] = &['?', '[', ']', '{', '}', '\\', '!'];

fn is_stars(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c == '*')
}

/// Docker's rule for "is the first component a registry": it has a `.` or a `:`, or it is
/// `localhost` (distribution/reference `splitDockerDomain`).
fn is_registry(segment: &str) -> bool {
    segment.contains('.') || segment.contains(':') || segment.eq_ignore_ascii_case("localhost")
}

fn docker_hub_alias(registry: &str) -> bool {
    registry == "index.docker.io" || registry == "registry-1.docker.io"
}

fn check_charset(pattern: &str, original: &str) -> Result<(), String> {
    for (i, seg) in pattern.split('/').enumerate() {
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-*".contains(*c) || (*c == ':' && i == 0)))
        {
            return Err(format!("{original:?}: {c:?} cannot appear in a trustwatch pattern"));
        }
    }
    Ok(())
}

/// Translates a Connaisseur `policy[].pattern`.
///
/// Connaisseur 3 (`internal/config/config.go` `MatchingRule`): the registry host is folded to
/// lower case, a `*` is prepended and appended unless present, and the result is a gobwas glob
/// without separators (`*` also matches `/`) on `<registry>/<repository>:<tag>`, where Docker
/// Hub is `index.docker.io`. Connaisseur 2 (`policy.py`): `:*` is appended to a pattern without
/// `:` and `fnmatch` matches it (`*` also matches `/`) against `docker.io/<repository>:<tag>`.
///
/// So: the tag part is dropped (trustwatch rules cover every tag), a segment that is only `*`
/// becomes `**`, a `*` inside a segment stays a `*` (narrower: it no longer crosses `/`),
/// Docker Hub names are normalized as `docker pull` does (`nginx` is `docker.io/library/nginx`).
pub fn connaisseur_pattern(version: ConnaisseurVersion, original: &str) -> Result<Translation, String> {
    let p = original.trim();
    if p.is_empty() {
        return Err("the pattern is empty".into());
    }
    if p.contains('@') {
        return Err(format!("{original:?} names a digest; trustwatch patterns match repositories"));
    }
    if let Some(c) = p.chars().find(|c| GLOB_SYNTAX.contains(c) || c.is_whitespace()) {
        return Err(format!("{original:?} uses the glob syntax {c:?}, which trustwatch patterns do not have"));
    }
    let mut notes = vec![];
    // The tag is what follows the last `:` after the last `/` (a `:` before it is a port).
    let (repo, tag) = match p.rfind(':') {
        Some(i) if !p[i + 1..].contains('/') => (&p[..i], Some(&p[i + 1..])),
        _ => (p, None),
    };
    let tag = match tag {
        Some("") => return Err(format!("{original:?} has an empty tag")),
        Some(t) if is_stars(t) => None,
        Some(t) => Some(t.to_string()),
        None => {
            if version == ConnaisseurVersion::V3 && !repo.ends_with('*') {
                notes.push(format!(
                    "Connaisseur 3 also matched repositories that start with {repo:?} (it appends a `*`); trustwatch matches the repository itself"
                ));
            }
            None
        }
    };
    let mut repo = repo.to_string();
    while repo.contains("**") {
        repo = repo.replace("**", "*");
    }
    let segs: Vec<&str> = repo.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("{original:?} has an empty path segment"));
    }
    let mut out: Vec<String> = vec![];
    let first = segs[0];
    if is_stars(first) {
        out.extend(segs.iter().map(|s| s.to_string()));
    } else if is_registry(first) {
        let host = first.to_ascii_lowercase();
        let host = if docker_hub_alias(&host) { "docker.io".to_string() } else { host };
        let rest = &segs[1..];
        if rest.is_empty() {
            return Err(format!("{original:?} names a registry but no repository"));
        }
        let hub_single = host == "docker.io" && rest.len() == 1 && !rest[0].contains('*');
        out.push(host);
        if hub_single {
            out.push("library".into());
        }
        out.extend(rest.iter().map(|s| s.to_string()));
    } else {
        notes.push(format!("{original:?} names no registry: Docker Hub (docker.io) is assumed, as `docker pull` does"));
        out.push("docker.io".into());
        if segs.len() == 1 {
            out.push("library".into());
        }
        out.extend(segs.iter().map(|s| s.to_string()));
    }
    let mut mapped: Vec<String> = vec![];
    let mut mixed = false;
    for seg in out {
        if is_stars(&seg) {
            if mapped.last().map(String::as_str) != Some("**") {
                mapped.push("**".into());
            }
        } else {
            mixed |= seg.contains('*');
            mapped.push(seg);
        }
    }
    if mixed {
        notes.push(format!(
            "in {original:?} a `*` inside a path segment matches within that segment only in trustwatch; Connaisseur's `*` also matched `/`"
        ));
    }
    let pattern = mapped.join("/");
    if pattern.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("{original:?} has upper-case letters; repositories are lower case, so it matches nothing"));
    }
    check_charset(&pattern, original)?;
    Ok(Translation { pattern, tag, notes })
}

/// Translates a notation `registryScopes` entry: `*` (the global scope) is `**`; a fully
/// qualified repository is itself, with Docker Hub names normalized as trustwatch normalizes
/// images (`index.docker.io/x` and `docker.io/nginx` are `docker.io/x`, `docker.io/library/nginx`).
pub fn notation_scope(scope: &str) -> Result<(String, Option<String>), String> {
    if scope == "*" {
        return Ok(("**".into(), None));
    }
    let (registry, path) =
        scope.split_once('/').ok_or_else(|| format!("registry scope {scope:?} has no repository"))?;
    let registry = if docker_hub_alias(registry) { "docker.io" } else { registry };
    let path =
        if registry == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path.to_string() };
    let pattern = format!("{registry}/{path}");
    check_charset(&pattern, scope)?;
    let note = (pattern != scope).then(|| {
        format!("registry scope {scope:?} is matched as {pattern:?} (trustwatch normalizes Docker Hub names)")
    });
    Ok((pattern, note))
}

// ---------------------------------------------------------------------------------------------
// Connaisseur's matching, to compare rule selection
// ---------------------------------------------------------------------------------------------

/// A glob where `*` matches any run of characters (including `/`) and `?` one character.
fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard matching with one backtrack point: linear in practice.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Connaisseur 3 `foldHost`: lower-cases the first component when it is a registry host.
fn fold_host(s: &str) -> String {
    match s.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host.eq_ignore_ascii_case("localhost") => {
            format!("{}/{rest}", host.to_ascii_lowercase())
        }
        _ => s.to_string(),
    }
}

fn with_tag(pattern: &str) -> String {
    if pattern.contains(':') { pattern.to_string() } else { format!("{pattern}:*") }
}

/// Whether a Connaisseur pattern matches an image string ([`image_string`]).
pub fn connaisseur_matches(version: ConnaisseurVersion, pattern: &str, image: &str) -> bool {
    match version {
        ConnaisseurVersion::V3 => {
            let mut p = fold_host(pattern);
            if !p.starts_with('*') {
                p.insert(0, '*');
            }
            if !p.ends_with('*') {
                p.push('*');
            }
            glob(p.as_bytes(), fold_host(image).as_bytes())
        }
        ConnaisseurVersion::V2 => glob(with_tag(pattern).as_bytes(), image.as_bytes()),
    }
}

/// How Connaisseur ranks a matching pattern for an image: components, the longest common
/// prefix of each component with the image's, each component's length.
struct Rank {
    components: usize,
    prefixes: Vec<usize>,
    lengths: Vec<usize>,
}

fn rank(version: ConnaisseurVersion, pattern: &str, image: &str) -> Rank {
    let pattern = if version == ConnaisseurVersion::V2 { with_tag(pattern) } else { pattern.to_string() };
    let comps: Vec<&str> = pattern.split('/').collect();
    let image_comps: Vec<&str> = image.split('/').collect();
    let prefixes = comps
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ic = image_comps.get(i).copied().unwrap_or("");
            c.bytes().zip(ic.bytes()).take_while(|(a, b)| a == b).count()
        })
        .collect();
    Rank { components: comps.len(), prefixes, lengths: comps.iter().map(|c| c.len()).collect() }
}

/// The rule Connaisseur applies to an image: the index of the most specific matching pattern
/// (`None` entries are rules left out of the comparison), or `None` when no pattern matches
/// (Connaisseur then denies the image).
///
/// Connaisseur docs (basics.md, "Image policy"): "The pattern that has a higher number of
/// components wins ... the longest common prefix between each pattern component and
/// corresponding image component are calculated ... The pattern with the longest common prefix
/// in one component, starting from the leftmost, wins ... the pattern with a longer component,
/// starting from the leftmost, wins." On a complete tie Connaisseur 3 keeps the later rule
/// (`match.Compare(bestMatch)` returns the receiver) and Connaisseur 2 the earlier one (its
/// length loop returns the other match unless the first component is strictly longer).
pub fn connaisseur_rule_for(version: ConnaisseurVersion, patterns: &[Option<&str>], image: &str) -> Option<usize> {
    let mut best: Option<(usize, Rank)> = None;
    for (i, p) in patterns.iter().enumerate() {
        let Some(p) = p else { continue };
        if !connaisseur_matches(version, p, image) {
            continue;
        }
        let r = rank(version, p, image);
        let Some((_, b)) = &best else {
            best = Some((i, r));
            continue;
        };
        let new_wins = match r.components.cmp(&b.components) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => match r.prefixes.cmp(&b.prefixes) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => match version {
                    ConnaisseurVersion::V3 => r.lengths >= b.lengths,
                    ConnaisseurVersion::V2 => r.lengths.first() > b.lengths.first(),
                },
            },
        };
        if new_wins {
            best = Some((i, r));
        }
    }
    best.map(|(i, _)| i)
}

/// The image string Connaisseur matches patterns against, for a normalized repository and a
/// tag: Connaisseur 3 names Docker Hub `index.docker.io` (go-containerregistry), Connaisseur 2
/// `docker.io`.
pub fn image_string(version: ConnaisseurVersion, repository: &str, tag: &str) -> String {
    match (version, repository.strip_prefix("docker.io/")) {
        (ConnaisseurVersion::V3, Some(rest)) => format!("index.docker.io/{rest}:{tag}"),
        _ => format!("{repository}:{tag}"),
    }
}

/// Normalizes a repository as `docker pull` does: no registry means Docker Hub, and a single
/// Docker Hub name is under `library/`.
pub fn normalize_repository(repo: &str) -> String {
    match repo.split_once('/') {
        Some((first, rest)) if is_registry(first) => {
            let host = if docker_hub_alias(first) { "docker.io" } else { first };
            if host == "docker.io" && !rest.contains('/') {
                format!("docker.io/library/{rest}")
            } else {
                format!("{host}/{rest}")
            }
        }
        Some(_) => format!("docker.io/{repo}"),
        None => format!("docker.io/library/{repo}"),
    }
}

/// Sample repositories a trustwatch pattern matches: `*` becomes `w`, a `**` segment one and
/// two segments (and, in front, a registry of its own), normalized.
pub fn witnesses(pattern: &str) -> Vec<String> {
    let mut outs: Vec<String> = vec![String::new()];
    for (i, seg) in pattern.split('/').enumerate() {
        let options: Vec<&str> = if seg == "**" {
            if i == 0 { vec!["w", "w/w", "w.example.com/w/w"] } else { vec!["w", "w/w"] }
        } else {
            vec![seg]
        };
        let mut next = vec![];
        for o in &outs {
            for opt in &options {
                let part = opt.replace('*', "w");
                next.push(if o.is_empty() { part } else { format!("{o}/{part}") });
            }
        }
        next.truncate(16);
        outs = next;
    }
    let mut out: Vec<String> = outs.iter().map(|r| normalize_repository(r)).collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::pattern_matches;
    use ConnaisseurVersion::{V2, V3};

    fn tw(version: ConnaisseurVersion, p: &str) -> String {
        connaisseur_pattern(version, p).unwrap().pattern
    }

    #[test]
    fn connaisseur_patterns_become_repository_globs() {
        for v in [V2, V3] {
            assert_eq!(tw(v, "*:*"), "**");
            assert_eq!(tw(v, "docker.io/library/*:*"), "docker.io/library/**");
            assert_eq!(
                tw(v, "docker.io/securesystemsengineering/connaisseur:*"),
                "docker.io/securesystemsengineering/connaisseur"
            );
            assert_eq!(tw(v, "registry.k8s.io/*:*"), "registry.k8s.io/**");
            assert_eq!(tw(v, "Registry.Example.com:5000/team/*:*"), "registry.example.com:5000/team/**");
            assert_eq!(tw(v, "index.docker.io/nginx:*"), "docker.io/library/nginx");
            assert_eq!(tw(v, "ghcr.io/*/app:*"), "ghcr.io/**/app");
            assert_eq!(tw(v, "ghcr.io/**/app:*"), "ghcr.io/**/app");
            assert_eq!(tw(v, "*/*/app:*"), "**/app");
        }
        let t = connaisseur_pattern(V3, "bitnami/*:*").unwrap();
        assert_eq!(t.pattern, "docker.io/bitnami/**");
        assert!(t.notes[0].contains("Docker Hub (docker.io) is assumed"), "{:?}", t.notes);
        let t = connaisseur_pattern(V3, "nginx:*").unwrap();
        assert_eq!(t.pattern, "docker.io/library/nginx");
    }

    #[test]
    fn tag_filters_and_segment_stars_are_reported() {
        let t = connaisseur_pattern(V3, "docker.io/securesystemsengineering/testimage:co-*").unwrap();
        assert_eq!(
            (t.pattern.as_str(), t.tag.as_deref()),
            ("docker.io/securesystemsengineering/testimage", Some("co-*"))
        );
        let t = connaisseur_pattern(V3, "ghcr.io/acme/app-*:*").unwrap();
        assert_eq!(t.pattern, "ghcr.io/acme/app-*");
        assert!(t.notes[0].contains("within that segment only"), "{:?}", t.notes);
        // Connaisseur 3 appends `*` to a pattern without a tag: it matched `nginx-extra` too.
        let t = connaisseur_pattern(V3, "docker.io/library/nginx").unwrap();
        assert_eq!(t.pattern, "docker.io/library/nginx");
        assert!(t.notes[0].contains("start with"), "{:?}", t.notes);
        assert!(connaisseur_pattern(V2, "docker.io/library/nginx").unwrap().notes.is_empty());
    }

    #[test]
    fn patterns_trustwatch_cannot_express_are_errors() {
        for (bad, why) in [
            ("docker.io/app@sha256:00", "digest"),
            ("docker.io/{a,b}:*", "glob syntax '{'"),
            ("docker.io/app?:*", "glob syntax '?'"),
            ("docker.io//app:*", "empty path segment"),
            ("docker.io/App:*", "upper-case"),
            ("registry.k8s.io:*", "no repository"),
            ("docker.io/app+x:*", "'+' cannot appear"),
            ("docker.io/app:", "empty tag"),
        ] {
            let e = connaisseur_pattern(V3, bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn notation_scopes_become_exact_patterns_and_the_global_scope_double_star() {
        assert_eq!(notation_scope("*").unwrap(), ("**".to_string(), None));
        assert_eq!(notation_scope("registry.example.com/team/app").unwrap().0, "registry.example.com/team/app");
        assert_eq!(notation_scope("localhost:5000/net-monitor").unwrap().0, "localhost:5000/net-monitor");
        let (p, note) = notation_scope("docker.io/nginx").unwrap();
        assert_eq!(p, "docker.io/library/nginx");
        assert!(note.unwrap().contains("normalizes Docker Hub"));
        assert!(notation_scope("registry.example.com/a+b").is_err());
    }

    /// Notation: "Exact match: If there exists a trust policy whose scope contains the
    /// artifact's repository URI then the aforementioned policy MUST be used ... Global: If
    /// there exists a trust policy with global scope then use that policy". An exact pattern
    /// always has more literal characters than `**`, so trustwatch picks the same.
    #[test]
    fn exact_scopes_beat_the_global_scope_as_in_notation() {
        use crate::crd::{ImageRule, ImageTrustPolicySpec};
        let rules: Vec<ImageRule> = ["**", "registry.example.com/team/app", "r.io/a"]
            .iter()
            .map(|s| ImageRule {
                pattern: notation_scope(if *s == "**" { "*" } else { s }).unwrap().0,
                trust_root: Some(s.replace(['*', '/', '.'], "x")),
                trust_roots: vec![],
                require: None,
                signers: vec![],
            })
            .collect();
        let spec: ImageTrustPolicySpec = serde_json::from_value(serde_json::json!({ "images": rules })).unwrap();
        assert_eq!(spec.rule_for("registry.example.com/team/app").unwrap().pattern, "registry.example.com/team/app");
        assert_eq!(spec.rule_for("registry.example.com/team/app2").unwrap().pattern, "**");
        assert_eq!(spec.rule_for("registry.example.com/team").unwrap().pattern, "**");
        assert_eq!(spec.rule_for("r.io/a").unwrap().pattern, "r.io/a");
    }

    #[test]
    fn connaisseur_star_crosses_slashes_and_v3_matches_substrings() {
        assert!(connaisseur_matches(V3, "docker.io/library/*:*", "index.docker.io/library/nginx:1.27"));
        assert!(connaisseur_matches(V3, "docker.io/library/*:*", "index.docker.io/library/a/b:1"));
        assert!(connaisseur_matches(V3, "docker.io/library/nginx", "index.docker.io/library/nginx-extra:1"));
        assert!(!connaisseur_matches(V2, "docker.io/library/nginx", "docker.io/library/nginx-extra:1"));
        assert!(connaisseur_matches(V2, "docker.io/library/nginx", "docker.io/library/nginx:1"));
        assert!(!connaisseur_matches(V2, "bitnami/*:*", "docker.io/bitnami/redis:7"));
        assert!(connaisseur_matches(V3, "bitnami/*:*", "index.docker.io/bitnami/redis:7"));
        assert!(connaisseur_matches(V3, "Registry.Example.com/app:*", "registry.example.com/app:1"));
        assert!(connaisseur_matches(V2, "docker.io/x/testimage:co*", "docker.io/x/testimage:co-signed"));
        assert!(!connaisseur_matches(V2, "docker.io/x/testimage:co*", "docker.io/x/testimage:latest"));
    }

    /// The example of Connaisseur's basics.md: `docker.io/superrepo/myimg:v1` -> rule 1,
    /// `docker.io/myrepo/superimg:v1` -> rule 2, `docker.io/myrepo/myimg:v1` -> rule 3.
    #[test]
    fn connaisseur_rule_selection_follows_its_documented_example() {
        let rules = [Some("*:*"), Some("docker.io/myrepo/*:*"), Some("docker.io/myrepo/myimg:*")];
        for v in [V2, V3] {
            let pick = |repo: &str| connaisseur_rule_for(v, &rules, &image_string(v, repo, "v1"));
            assert_eq!(pick("docker.io/superrepo/myimg"), Some(0), "{v:?}");
            assert_eq!(pick("docker.io/myrepo/superimg"), Some(1), "{v:?}");
            assert_eq!(pick("docker.io/myrepo/myimg"), Some(2), "{v:?}");
        }
        assert_eq!(connaisseur_rule_for(V3, &[Some("ghcr.io/*:*")], "docker.io/x:1"), None);
        // More components win in Connaisseur even with fewer literal characters.
        let rules = [Some("registry.example.com/*:*"), Some("*/*/*:*")];
        assert_eq!(connaisseur_rule_for(V3, &rules, "registry.example.com/team/app:1"), Some(1));
    }

    /// The translated patterns select, for the documented example's images, the rule
    /// Connaisseur selects.
    #[test]
    fn translated_patterns_keep_connaisseur_precedence_for_the_documented_cases() {
        use crate::crd::ImageTrustPolicySpec;
        let connaisseur = [
            "*:*",
            "docker.io/myrepo/*:*",
            "docker.io/myrepo/myimg:*",
            "docker.io/library/*:*",
            "registry.k8s.io/*:*",
            "docker.io/securesystemsengineering/*:*",
        ];
        for v in [V2, V3] {
            let images: Vec<serde_json::Value> = connaisseur
                .iter()
                .enumerate()
                .map(|(i, p)| serde_json::json!({"pattern": tw(v, p), "trustRoot": format!("r{i}")}))
                .collect();
            let spec: ImageTrustPolicySpec = serde_json::from_value(serde_json::json!({ "images": images })).unwrap();
            let patterns: Vec<Option<&str>> = connaisseur.iter().map(|p| Some(*p)).collect();
            for p in connaisseur {
                for repo in witnesses(&tw(v, p)) {
                    let c = connaisseur_rule_for(v, &patterns, &image_string(v, &repo, "latest")).unwrap();
                    let t = spec.rule_for(&repo).unwrap();
                    assert_eq!(t.trust_root.as_deref(), Some(format!("r{c}").as_str()), "{v:?} {repo}");
                    assert!(pattern_matches(&t.pattern, &repo));
                }
            }
        }
    }

    #[test]
    fn witnesses_are_normalized_samples_of_a_pattern() {
        assert_eq!(witnesses("docker.io/library/nginx"), vec!["docker.io/library/nginx"]);
        assert_eq!(witnesses("ghcr.io/acme/**"), vec!["ghcr.io/acme/w", "ghcr.io/acme/w/w"]);
        assert_eq!(witnesses("**"), vec!["docker.io/library/w", "docker.io/w/w", "w.example.com/w/w"]);
        assert_eq!(witnesses("ghcr.io/app-*"), vec!["ghcr.io/app-w"]);
    }

    #[test]
    fn the_glob_matches_like_fnmatch() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
        assert!(glob(b"a?c", b"abc"));
        assert!(glob(b"*a/b:*", b"x/a/b:1"));
    }
}
