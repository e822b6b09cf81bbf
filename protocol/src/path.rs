//! `ProjectPath`: a file's name inside a project, relative to the project root.
//!
//! The one place where path rules live. A `ProjectPath` can only be built by
//! [`ProjectPath::new`], so holding one proves the path cannot name anything
//! outside the project root on any platform we serve: no absolute path, no
//! drive letter, no `\`, no `.`/`..`/empty component, no control character,
//! and no bidirectional formatting control (which would make a feed show
//! `evil\u{202E}txt.exe` as `evilexe.txt`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest accepted path, in bytes of UTF-8.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted path component, in bytes of UTF-8.
pub const MAX_COMPONENT_BYTES: usize = 255;

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(type = "string"))]
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectPath(String);

/// Why a path was refused. The message is meant for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("path component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    #[error("path must be relative to the project root (no leading '/')")]
    Absolute,
    #[error("path must not start with a drive letter")]
    DriveLetter,
    #[error("path must use '/' as separator, not '\\'")]
    Backslash,
    #[error("path contains a NUL or other control character")]
    ControlChar,
    #[error("path contains a bidirectional formatting control (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F or U+061C)")]
    BidiControl,
    #[error("path has an empty component ('//' or a trailing '/')")]
    EmptyComponent,
    #[error("path has a '.' or '..' component")]
    DotComponent,
}

impl ProjectPath {
    /// Checks `s` against the protocol's path rules.
    pub fn new(s: impl Into<String>) -> Result<Self, PathError> {
        let s = s.into();
        validate(&s)?;
        Ok(ProjectPath(s))
    }

    /// Builds a path from the components of a relative native path, as a
    /// watcher sees it (`src/main.rs` relative to the folder root).
    pub fn from_relative(rel: &Path) -> Result<Self, PathError> {
        let mut parts = Vec::new();
        for comp in rel.components() {
            match comp {
                std::path::Component::Normal(os) => match os.to_str() {
                    Some(s) => parts.push(s),
                    None => return Err(PathError::ControlChar),
                },
                std::path::Component::CurDir | std::path::Component::ParentDir => {
                    return Err(PathError::DotComponent)
                }
                _ => return Err(PathError::Absolute),
            }
        }
        ProjectPath::new(parts.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order; none is empty, `.` or `..`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Where this path lives under `root` on this machine. The result is
    /// always `root` followed by plain (normal) components.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut out = root.to_path_buf();
        for c in self.components() {
            out.push(c);
        }
        out
    }
}

/// Unicode bidirectional formatting controls: embeddings and overrides
/// (U+202A–U+202E), isolates (U+2066–U+2069), the LRM/RLM marks (U+200E,
/// U+200F) and the Arabic letter mark (U+061C). They change how the text
/// around them is displayed, so a name can show as something it is not.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that display as nothing: zero-width space, non-joiner and
/// joiner (U+200B–U+200D), word joiner (U+2060), and the byte-order mark
/// (U+FEFF). Two names that differ only by these look identical.
pub fn is_zero_width(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

fn validate(s: &str) -> Result<(), PathError> {
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    if s.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if s.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    if s.chars().any(is_bidi_control) {
        return Err(PathError::BidiControl);
    }
    if s.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if s.contains('\\') {
        return Err(PathError::Backslash);
    }
    let b = s.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(PathError::DriveLetter);
    }
    for comp in s.split('/') {
        match comp {
            "" => return Err(PathError::EmptyComponent),
            "." | ".." => return Err(PathError::DotComponent),
            c if c.len() > MAX_COMPONENT_BYTES => return Err(PathError::ComponentTooLong),
            _ => {}
        }
    }
    Ok(())
}

impl TryFrom<String> for ProjectPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ProjectPath::new(s)
    }
}

impl From<ProjectPath> for String {
    fn from(p: ProjectPath) -> String {
        p.0
    }
}

impl fmt::Display for ProjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProjectPath({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "a",
            "src/main.rs",
            "dir with space/ünïcødé.txt",
            "a/b/c/d.e.f",
            ".hidden/x",
            "...",
            "x/a:b",
            "ab:c",
        ] {
            assert!(ProjectPath::new(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn refuses_each_bad_form_with_its_reason() {
        let cases = [
            ("", PathError::Empty),
            ("../x", PathError::DotComponent),
            ("a/../../x", PathError::DotComponent),
            ("./x", PathError::DotComponent),
            ("/etc/passwd", PathError::Absolute),
            ("a//b", PathError::EmptyComponent),
            ("a/", PathError::EmptyComponent),
            ("C:\\x", PathError::Backslash),
            ("C:x", PathError::DriveLetter),
            ("c:/windows", PathError::DriveLetter),
            ("a\\b", PathError::Backslash),
            ("a\0b", PathError::ControlChar),
            ("a\nb", PathError::ControlChar),
            ("a\u{7f}", PathError::ControlChar),
            ("invoice\u{202E}fdp.exe", PathError::BidiControl),
            ("a/\u{2066}b", PathError::BidiControl),
            ("\u{200F}x", PathError::BidiControl),
            ("x\u{061C}", PathError::BidiControl),
        ];
        for (p, want) in cases {
            assert_eq!(ProjectPath::new(p), Err(want.clone()), "{p:?}");
        }
        assert_eq!(
            ProjectPath::new("x".repeat(256)),
            Err(PathError::ComponentTooLong)
        );
        let long = vec!["y".repeat(200); 21].join("/");
        assert_eq!(ProjectPath::new(long), Err(PathError::TooLong));
        assert!(ProjectPath::new(vec!["y".repeat(255); 16].join("/")).is_ok());
    }

    #[test]
    fn serde_refuses_bad_paths() {
        assert!(serde_json::from_str::<ProjectPath>("\"../x\"").is_err());
        let p: ProjectPath = serde_json::from_str("\"a/b\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"a/b\"");
    }

    #[test]
    fn from_relative_joins_with_slashes() {
        let p = ProjectPath::from_relative(Path::new("src/lib.rs")).unwrap();
        assert_eq!(p.as_str(), "src/lib.rs");
        assert!(ProjectPath::from_relative(Path::new("/abs")).is_err());
        assert!(ProjectPath::from_relative(Path::new("../up")).is_err());
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            Just("C:".to_string()),
            Just("\\".to_string()),
            "[a-zA-Z0-9._\\-: \\\\\u{0}\u{1f}é/]{0,12}",
        ]
    }

    proptest! {
        /// Whatever the input, an accepted path placed under a root stays
        /// under that root and is made only of plain components.
        #[test]
        fn no_accepted_path_escapes_the_root(parts in proptest::collection::vec(segment(), 1..8), lead in prop_oneof![Just(""), Just("/"), Just("./")]) {
            let s = format!("{lead}{}", parts.join("/"));
            if let Ok(p) = ProjectPath::new(s.clone()) {
                let root = Path::new("/srv/project-root");
                let full = p.under(root);
                prop_assert!(full.starts_with(root));
                let rest = full.strip_prefix(root).unwrap();
                prop_assert!(rest.components().count() >= 1);
                for c in rest.components() {
                    prop_assert!(matches!(c, Component::Normal(_)), "{s:?} gave {c:?}");
                }
                prop_assert!(!s.contains('\\') && !s.contains('\0') && !s.starts_with('/'));
                // Round trip through the native form gives the same path.
                prop_assert_eq!(ProjectPath::from_relative(rest).unwrap(), p);
            }
        }

        /// Any bidi control anywhere in an otherwise fine path refuses it;
        /// zero-width characters in paths are left alone (they are legal in
        /// file names on every platform we serve).
        #[test]
        fn a_bidi_control_anywhere_is_refused(
            before in "[a-z]{1,10}(/[a-z]{1,10}){0,3}",
            after in "[a-z.]{0,10}",
            c in prop_oneof![
                (0x202Au32..=0x202E).prop_map(|u| char::from_u32(u).unwrap()),
                (0x2066u32..=0x2069).prop_map(|u| char::from_u32(u).unwrap()),
                Just('\u{200E}'), Just('\u{200F}'), Just('\u{061C}'),
            ],
        ) {
            let s = format!("{before}{c}{after}");
            prop_assert_eq!(ProjectPath::new(s), Err(PathError::BidiControl));
            let zero_width = format!("{before}\u{200B}{after}x");
            prop_assert!(ProjectPath::new(zero_width).is_ok());
        }

        #[test]
        fn arbitrary_strings_never_panic_and_never_escape(s in "\\PC{0,40}") {
            if let Ok(p) = ProjectPath::new(s) {
                let root = Path::new("/r");
                prop_assert!(p.under(root).strip_prefix(root).unwrap().components().all(|c| matches!(c, Component::Normal(_))));
            }
        }
    }
}
