//! Committee files: several weights files of one architecture in one, answered together (each
//! network over its own views, their logits averaged). Networks trained apart err differently,
//! so two together rank better than either (docs/training.md, "Committees").
//!
//! Layout: the magic `ONESHOTC`, a little-endian `u32` member count, then per member a `u32`
//! length and that many bytes of an ordinary weights file (which carries its own checksum). A
//! plain weights file is a committee of one, so every reader takes both.

use super::WeightsError;

const MAGIC: &[u8; 8] = b"ONESHOTC";
/// The most networks a committee file may hold (a page runs every one for every drawing).
pub const MAX_MEMBERS: usize = 8;

/// Whether `bytes` start like a committee file (of more than one network, or damaged).
pub fn is_committee(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The weights files of a committee's members, in order; a plain weights file is its own only
/// member. Only the container is checked here: each member's own reader checks the rest.
pub fn members(bytes: &[u8]) -> Result<Vec<&[u8]>, WeightsError> {
    if !is_committee(bytes) {
        return Ok(vec![bytes]);
    }
    let truncated = |expected| WeightsError::Truncated { expected, found: bytes.len() };
    let mut at = MAGIC.len();
    let next_u32 = |at: &mut usize| -> Result<usize, WeightsError> {
        let end = *at + 4;
        let raw: [u8; 4] = bytes.get(*at..end).and_then(|b| b.try_into().ok()).ok_or(truncated(end))?;
        *at = end;
        Ok(u32::from_le_bytes(raw) as usize)
    };
    let count = next_u32(&mut at)?;
    if !(1..=MAX_MEMBERS).contains(&count) {
        return Err(WeightsError::Header(format!(
            "a committee holds 1 to {MAX_MEMBERS} networks, this one claims {count}"
        )));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = next_u32(&mut at)?;
        let end =
            at.checked_add(len).filter(|&end| end <= bytes.len()).ok_or(truncated(at.saturating_add(len)))?;
        out.push(&bytes[at..end]);
        at = end;
    }
    if at != bytes.len() {
        return Err(WeightsError::Header(format!(
            "{} bytes after the committee's last network",
            bytes.len() - at
        )));
    }
    Ok(out)
}

/// A committee file of these weights files (one file is returned as it is).
pub fn join(files: &[&[u8]]) -> Vec<u8> {
    if let [only] = files {
        return only.to_vec();
    }
    let mut out = MAGIC.to_vec();
    out.extend((files.len() as u32).to_le_bytes());
    for file in files {
        out.extend((file.len() as u32).to_le_bytes());
        out.extend_from_slice(file);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committee_splits_back_into_its_members() {
        let (a, b) = (b"ONESHOTW first".as_slice(), b"ONESHOTW second network".as_slice());
        let joined = join(&[a, b]);
        assert!(is_committee(&joined));
        assert_eq!(members(&joined).unwrap(), [a, b]);
        assert_eq!(join(&[a]), a, "one network stays a plain file");
        assert_eq!(members(a).unwrap(), [a], "a plain file is a committee of one");
    }

    #[test]
    fn damaged_committees_are_refused_without_panicking() {
        let joined = join(&[b"ONESHOTW one".as_slice(), b"ONESHOTW two".as_slice()]);
        for cut in 8..joined.len() {
            assert!(members(&joined[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = joined.clone();
        longer.push(0);
        assert!(members(&longer).is_err());
        let mut many = MAGIC.to_vec();
        many.extend(1000u32.to_le_bytes());
        assert!(matches!(members(&many), Err(WeightsError::Header(_))));
        let mut huge = MAGIC.to_vec();
        huge.extend(1u32.to_le_bytes());
        huge.extend(u32::MAX.to_le_bytes());
        assert!(matches!(members(&huge), Err(WeightsError::Truncated { .. })));
    }
}
