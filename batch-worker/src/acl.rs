//! POSIX ACLs between the kernel's `system.posix_acl_*` xattr encoding and the short text form
//! that GNU tar stores in `SCHILY.acl.access` / `SCHILY.acl.default` PAX records
//! (`user::rw-,user:1000:r--,group::r--,mask::r--,other::r--`, numeric ids).
//!
//! The xattr encoding (linux/posix_acl_xattr.h): a little-endian u32 version (2), then one
//! 8-byte entry per ACL entry: u16 tag, u16 permissions, u32 id.

pub const ACCESS_XATTR: &str = "system.posix_acl_access";
pub const DEFAULT_XATTR: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
/// The id field of entries that have none (owner, group owner, mask, other).
const UNDEFINED_ID: u32 = u32::MAX;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    #[error("ACL xattr has {0} bytes, not a version-2 header plus 8-byte entries")]
    Length(usize),
    #[error("ACL xattr version {0} is not 2")]
    Version(u32),
    #[error("ACL xattr has unknown tag {0:#x}")]
    Tag(u16),
    #[error("ACL text entry {0:?} is malformed")]
    Text(String),
}

/// Decodes a `system.posix_acl_*` value into tar's text form.
pub fn xattr_to_text(value: &[u8]) -> Result<String, AclError> {
    if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) {
        return Err(AclError::Length(value.len()));
    }
    let version = u32::from_le_bytes(value[..4].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(AclError::Version(version));
    }
    let entries = value[4..].chunks_exact(8).map(|e| {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let perms = format!(
            "{}{}{}",
            if perm & 4 != 0 { 'r' } else { '-' },
            if perm & 2 != 0 { 'w' } else { '-' },
            if perm & 1 != 0 { 'x' } else { '-' }
        );
        Ok(match tag {
            USER_OBJ => format!("user::{perms}"),
            USER => format!("user:{id}:{perms}"),
            GROUP_OBJ => format!("group::{perms}"),
            GROUP => format!("group:{id}:{perms}"),
            MASK => format!("mask::{perms}"),
            OTHER => format!("other::{perms}"),
            tag => return Err(AclError::Tag(tag)),
        })
    });
    Ok(entries.collect::<Result<Vec<_>, _>>()?.join(","))
}

/// Encodes tar's text form (as GNU tar or we wrote it) into a `system.posix_acl_*` value.
/// Accepts `u`/`g`/`m`/`o` abbreviations, numeric ids, and newlines as separators.
pub fn text_to_xattr(text: &str) -> Result<Vec<u8>, AclError> {
    let mut out = VERSION.to_le_bytes().to_vec();
    for entry in text.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || AclError::Text(entry.to_string());
        let mut fields = entry.split(':');
        let (kind, qualifier, perms) = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(k), Some(q), Some(p), None) => (k, q, p),
            _ => return Err(bad()),
        };
        let id = if qualifier.is_empty() { None } else { Some(qualifier.parse::<u32>().map_err(|_| bad())?) };
        let tag = match (kind, id) {
            ("user" | "u", None) => USER_OBJ,
            ("user" | "u", Some(_)) => USER,
            ("group" | "g", None) => GROUP_OBJ,
            ("group" | "g", Some(_)) => GROUP,
            ("mask" | "m", None) => MASK,
            ("other" | "o", None) => OTHER,
            _ => return Err(bad()),
        };
        let mut perm = 0u16;
        for c in perms.chars() {
            perm |= match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                '-' => 0,
                _ => return Err(bad()),
            };
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.unwrap_or(UNDEFINED_ID).to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn decodes_an_acl_with_named_entries() {
        let xattr = encode(&[
            (USER_OBJ, 6, UNDEFINED_ID),
            (USER, 4, 1000),
            (GROUP_OBJ, 5, UNDEFINED_ID),
            (GROUP, 7, 50),
            (MASK, 7, UNDEFINED_ID),
            (OTHER, 0, UNDEFINED_ID),
        ]);
        assert_eq!(
            xattr_to_text(&xattr).unwrap(),
            "user::rw-,user:1000:r--,group::r-x,group:50:rwx,mask::rwx,other::---"
        );
    }

    #[test]
    fn text_round_trips_to_the_same_bytes() {
        let xattr = encode(&[
            (USER_OBJ, 7, UNDEFINED_ID),
            (USER, 1, 65534),
            (GROUP_OBJ, 0, UNDEFINED_ID),
            (MASK, 1, UNDEFINED_ID),
            (OTHER, 4, UNDEFINED_ID),
        ]);
        assert_eq!(text_to_xattr(&xattr_to_text(&xattr).unwrap()).unwrap(), xattr);
    }

    #[test]
    fn accepts_gnu_tar_abbreviations_and_newlines() {
        let long = text_to_xattr("user::rw-,group::r--,other::r--").unwrap();
        assert_eq!(text_to_xattr("u::rw-\ng::r--\no::r--\n").unwrap(), long);
    }

    #[test]
    fn rejects_malformed_values() {
        assert_eq!(xattr_to_text(&[2, 0, 0]), Err(AclError::Length(3)));
        assert_eq!(
            xattr_to_text(&encode(&[])[..0].iter().chain(&[1, 0, 0, 0]).copied().collect::<Vec<_>>()),
            Err(AclError::Version(1))
        );
        assert_eq!(xattr_to_text(&encode(&[(0x40, 0, 0)])), Err(AclError::Tag(0x40)));
        assert!(matches!(text_to_xattr("user:bob:rw-"), Err(AclError::Text(_))));
        assert!(matches!(text_to_xattr("mask:1:rw-"), Err(AclError::Text(_))));
        assert!(matches!(text_to_xattr("user::rwz"), Err(AclError::Text(_))));
    }
}
