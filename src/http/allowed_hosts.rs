//! Django's ALLOWED_HOSTS patterns: `*`, exact hosts, and `.example.com`
//! for a domain and every subdomain. The check itself is
//! `layers::hosts`.

#[derive(Debug, Clone)]
pub struct AllowedHosts {
    any: bool,
    exact: Vec<String>,
    /// ".example.com" matches example.com and every subdomain.
    suffixes: Vec<String>,
}

impl AllowedHosts {
    pub fn new(patterns: &[String]) -> Self {
        let mut hosts = Self {
            any: false,
            exact: Vec::new(),
            suffixes: Vec::new(),
        };
        for pattern in patterns {
            let pattern = pattern.trim().to_ascii_lowercase();
            if pattern == "*" {
                hosts.any = true;
            } else if let Some(suffix) = pattern.strip_prefix('.') {
                hosts.suffixes.push(suffix.to_string());
            } else if !pattern.is_empty() {
                hosts.exact.push(pattern);
            }
        }
        hosts
    }

    pub fn allows(&self, host: &str) -> bool {
        self.any
            || self.exact.iter().any(|h| h == host)
            || self.suffixes.iter().any(|suffix| {
                host == suffix
                    || host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
    }
}
