//! Which file keys a command-line flag set, so that messages name the flag the operator typed.

/// Which file keys hold a value that came from a flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FromFlags {
    pub kubeconfig: bool,
    pub master: bool,
}

impl FromFlags {
    /// The name to use in messages about `file_key`: the flag's, when a flag set it.
    pub(crate) fn key_name(self, file_key: &'static str) -> &'static str {
        match file_key {
            "kubeAPIConfig.kubeConfig" if self.kubeconfig => "--kubeconfig",
            "kubeAPIConfig.master" if self.master => "--master",
            other => other,
        }
    }
}
