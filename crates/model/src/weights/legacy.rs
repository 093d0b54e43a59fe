//! Format 1 (before December 2026): the header without tensor entries, then Burn's burnpack
//! record. Read natively only, so old checkpoints and downloads can be converted.

use burn::module::Module;
use burn::store::{DTypePolicy, ModuleRecord};
use burn::tensor::{Bytes, Device};
use serde::Deserialize;

use oneshot_core::architecture::SiameseConfig;
use oneshot_core::weights::WeightsError;

use crate::build::BuildNetwork;
use crate::network::Siamese;

const MAGIC_LEN: usize = 8;

#[derive(Deserialize)]
struct Header {
    config: SiameseConfig,
    payload_len: usize,
    payload_crc32: u32,
}

/// The architecture and burnpack payload of a format-1 file, its checksum verified.
pub(super) fn split(bytes: &[u8]) -> Result<(SiameseConfig, &[u8]), WeightsError> {
    let truncated = |expected| WeightsError::Truncated { expected, found: bytes.len() };
    let start = MAGIC_LEN + 4;
    let len_bytes: [u8; 4] =
        bytes.get(MAGIC_LEN..start).and_then(|b| b.try_into().ok()).ok_or(truncated(start))?;
    let header_end =
        start.checked_add(u32::from_le_bytes(len_bytes) as usize).ok_or(truncated(usize::MAX))?;
    let header = bytes.get(start..header_end).ok_or(truncated(header_end))?;
    let header: Header = serde_json::from_slice(header).map_err(|e| WeightsError::Header(e.to_string()))?;
    let end = header_end.checked_add(header.payload_len).ok_or(truncated(usize::MAX))?;
    let payload = bytes.get(header_end..end).ok_or(truncated(end))?;
    if crc32fast::hash(payload) != header.payload_crc32 {
        return Err(WeightsError::Checksum);
    }
    Ok((header.config, payload))
}

/// The network of a format-1 payload.
pub(super) fn load(
    config: SiameseConfig,
    payload: &[u8],
    device: &Device,
) -> Result<(SiameseConfig, Siamese), WeightsError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(payload.to_vec()))
        .map_err(|e| WeightsError::Tensors(e.to_string()))?
        .with_dtype_policy(DTypePolicy::CastToModule);
    let model =
        config.init(device).try_load_record(record).map_err(|e| WeightsError::Tensors(e.to_string()))?;
    Ok((config, model))
}
