//! Checks a metric name must pass before it becomes a path on disk.
//!
//! Carbon maps `a.b.c` to `a/b/c.wsp` with no checks at all, so a name like `..` or `../../etc/passwd`
//! walks out of the storage directory. Carbide refuses such names at the door, with a reason that the
//! caller counts and logs.

/// The longest name accepted, in bytes: Linux's PATH_MAX less room for the data directory.
pub const MAX_NAME_BYTES: usize = 4095 - 256;
/// The longest single component, in bytes: NAME_MAX less the `.wsp` suffix.
pub const MAX_COMPONENT_BYTES: usize = 255 - 4;

/// Why a metric name cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("empty metric name")]
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("metric name longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    /// One dot-separated component is longer than [`MAX_COMPONENT_BYTES`].
    #[error("metric name component longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    /// A component is empty (leading, trailing or doubled dot).
    #[error("metric name has an empty component")]
    EmptyComponent,
    /// The name holds a `/`, which would leave the directory tree.
    #[error("metric name contains a path separator")]
    PathSeparator,
    /// The name holds a NUL or another control character.
    #[error("metric name contains a control character")]
    ControlCharacter,
}

/// Accepts `name` only if every dot-separated component is a safe, non-empty file name.
pub fn validate_path_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(NameError::ControlCharacter);
    }
    if name.contains('/') || name.contains('\\') {
        return Err(NameError::PathSeparator);
    }
    for component in name.split('.') {
        if component.is_empty() {
            return Err(NameError::EmptyComponent);
        }
        if component.len() > MAX_COMPONENT_BYTES {
            return Err(NameError::ComponentTooLong);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(validate_path_name("servers.web01.cpu"), Ok(()));
        assert_eq!(validate_path_name("a-b_c:d#e"), Ok(()));
        assert_eq!(validate_path_name(""), Err(NameError::Empty));
        assert_eq!(
            validate_path_name("../../etc/passwd"),
            Err(NameError::PathSeparator)
        );
        assert_eq!(validate_path_name(".."), Err(NameError::EmptyComponent));
        assert_eq!(validate_path_name("a..b"), Err(NameError::EmptyComponent));
        assert_eq!(validate_path_name(".a"), Err(NameError::EmptyComponent));
        assert_eq!(validate_path_name("a."), Err(NameError::EmptyComponent));
        assert_eq!(validate_path_name("a\0b"), Err(NameError::ControlCharacter));
        assert_eq!(validate_path_name("a\\b"), Err(NameError::PathSeparator));
        assert_eq!(
            validate_path_name(&"x".repeat(300)),
            Err(NameError::ComponentTooLong)
        );
        let long = vec!["x"; 3000].join(".");
        assert_eq!(validate_path_name(&long), Err(NameError::TooLong));
    }

    proptest! {
        #[test]
        fn accepted_names_stay_inside_the_tree(name in "[a-z./\\\\\\x00]{0,20}") {
            if validate_path_name(&name).is_ok() {
                prop_assert!(!name.contains('/'));
                prop_assert!(name.split('.').all(|c| !c.is_empty() && c != ".."));
            }
        }
    }
}
