//! Traffic-control handles (`major:minor`), as `tc` prints and parses them.

use std::fmt;
use std::str::FromStr;

/// Errors from parsing a handle string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// The text is not `MAJ:MIN`, `MAJ:`, `root` or `none`.
    #[error("invalid tc handle {text:?}: expected hex `major:minor` such as `1:10`")]
    Invalid {
        /// The text that failed to parse.
        text: String,
    },
}

/// A 32-bit tc handle: 16-bit major (qdisc) and 16-bit minor (class) number.
///
/// Written in hex like `tc` does: `1:` is the qdisc `0x10000`, `1:10` is the
/// class `0x10010`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Handle(pub u32);

impl Handle {
    /// `TC_H_ROOT`: the egress root of a link (`tc ... root`).
    pub const ROOT: Handle = Handle(0xFFFF_FFFF);
    /// `TC_H_UNSPEC`: no handle; the kernel picks one.
    pub const UNSPEC: Handle = Handle(0);

    /// Builds `major:minor`.
    pub const fn new(major: u16, minor: u16) -> Handle {
        Handle(((major as u32) << 16) | minor as u32)
    }

    /// The major number (the qdisc part).
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The minor number (the class part).
    pub const fn minor(self) -> u16 {
        (self.0 & 0xFFFF) as u16
    }

    /// The qdisc handle `major:` this class belongs to.
    pub const fn qdisc(self) -> Handle {
        Handle(self.0 & 0xFFFF_0000)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Handle::ROOT => f.write_str("root"),
            Handle::UNSPEC => f.write_str("none"),
            h if h.minor() == 0 => write!(f, "{:x}:", h.major()),
            h => write!(f, "{:x}:{:x}", h.major(), h.minor()),
        }
    }
}

impl FromStr for Handle {
    type Err = HandleError;

    fn from_str(text: &str) -> Result<Handle, HandleError> {
        let invalid = || HandleError::Invalid {
            text: text.to_string(),
        };
        match text {
            "root" => return Ok(Handle::ROOT),
            "none" => return Ok(Handle::UNSPEC),
            _ => {}
        }
        let (maj, min) = text.split_once(':').ok_or_else(invalid)?;
        let parse = |s: &str| -> Result<u16, HandleError> {
            if s.is_empty() {
                Ok(0)
            } else {
                u16::from_str_radix(s, 16).map_err(|_| invalid())
            }
        };
        if maj.is_empty() {
            return Err(invalid());
        }
        Ok(Handle::new(parse(maj)?, parse(min)?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_like_tc() {
        assert_eq!("1:".parse::<Handle>().unwrap(), Handle(0x10000));
        assert_eq!("1:10".parse::<Handle>().unwrap(), Handle(0x10010));
        assert_eq!("ffff:fff1".parse::<Handle>().unwrap(), Handle(0xffff_fff1));
        assert_eq!("root".parse::<Handle>().unwrap(), Handle::ROOT);
        assert!("10".parse::<Handle>().is_err());
        assert!(":10".parse::<Handle>().is_err());
        assert!("1:10000".parse::<Handle>().is_err());
        assert!("x:1".parse::<Handle>().is_err());
        assert_eq!(Handle(0x10010).to_string(), "1:10");
        assert_eq!(Handle(0x10000).to_string(), "1:");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(major in 1u16.., minor: u16) {
            let h = Handle::new(major, minor);
            prop_assume!(h != Handle::ROOT);
            prop_assert_eq!(h.to_string().parse::<Handle>().unwrap(), h);
            prop_assert_eq!(h.major(), major);
            prop_assert_eq!(h.minor(), minor);
        }
    }
}
