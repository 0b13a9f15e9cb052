//! Decoding the records of a task's status update log.

use super::*;

#[allow(clippy::large_enum_variant)] // lives for one loop iteration
#[derive(Debug, PartialEq)]
pub(super) enum DecodedRecord {
    Update(StatusUpdate),
    Ack(Uuid),
}

/// The bytes prost writes for an ACK record, up to its uuid: `type` (field 1, varint)
/// `ACK` (1), then `uuid` (field 3, length-delimited) of 16 bytes.
pub(super) const PLAIN_ACK_PREFIX: [u8; 4] = [0x08, 0x01, 0x1a, 0x10];

/// The uuid of an ACK record encoded exactly as prost encodes one (the type, then the
/// 16-byte uuid, nothing else): what decoding it gives, without decoding it.
pub(super) fn plain_ack(payload: &[u8]) -> Option<Uuid> {
    Uuid::from_bytes(payload.strip_prefix(&PLAIN_ACK_PREFIX)?)
}

/// Decodes one record of `task.updates`; `buffer` gives the same payload as a `Bytes`
/// (asked for only when the record is not a plain ACK).
pub(super) fn decode_update_record(
    payload: &[u8],
    buffer: impl FnOnce() -> Bytes,
) -> Result<DecodedRecord, String> {
    match plain_ack(payload) {
        Some(uuid) => Ok(DecodedRecord::Ack(uuid)),
        None => decode_update_record_fully(buffer()),
    }
}

pub(super) fn decode_update_record_fully(payload: Bytes) -> Result<DecodedRecord, String> {
    let record = StatusUpdateRecord::decode(payload)
        .map_err(|error| format!("failed to decode status update record: {error}"))?;
    match status_update_record::Type::try_from(record.r#type) {
        Ok(status_update_record::Type::Update) => {
            let update = record.update.ok_or("UPDATE record without an update")?;
            if Uuid::from_bytes(&update.uuid).is_none() {
                return Err("UPDATE record without a 16-byte uuid".to_owned());
            }
            if update.status.is_none() {
                return Err("UPDATE record without a status".to_owned());
            }
            Ok(DecodedRecord::Update(update))
        }
        Ok(status_update_record::Type::Ack) => Uuid::from_bytes(&record.uuid)
            .map(DecodedRecord::Ack)
            .ok_or_else(|| "ACK record without a 16-byte uuid".to_owned()),
        Err(_) => Err(format!(
            "unknown status update record type {}",
            record.r#type
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::TaskStatus;

    fn record(r#type: status_update_record::Type, uuid: Vec<u8>) -> StatusUpdateRecord {
        StatusUpdateRecord {
            r#type: r#type as i32,
            update: None,
            uuid,
        }
    }

    /// The shortcut for plain ACKs gives what the full decode gives, and is taken for
    /// exactly the ACKs the agent writes.
    #[test]
    fn the_plain_ack_shortcut_decodes_as_prost_does() {
        let ack = record(status_update_record::Type::Ack, vec![7; 16]).encode_to_vec();
        let update = StatusUpdateRecord {
            update: Some(StatusUpdate {
                status: Some(TaskStatus::default()),
                uuid: vec![3; 16],
                ..StatusUpdate::default()
            }),
            ..record(status_update_record::Type::Update, Vec::new())
        }
        .encode_to_vec();
        let mut two_uuids = ack.clone();
        two_uuids.extend_from_slice(&ack[2..]);
        let payloads = [
            ack.clone(),
            ack[..ack.len() - 1].to_vec(),
            two_uuids,
            record(status_update_record::Type::Ack, vec![7; 15]).encode_to_vec(),
            record(status_update_record::Type::Ack, vec![7; 17]).encode_to_vec(),
            record(status_update_record::Type::Update, vec![7; 16]).encode_to_vec(),
            // The type as a two-byte varint: an ACK, but not as prost writes one.
            [&[0x08, 0x81, 0x00], &ack[2..]].concat(),
            update,
        ];
        for payload in &payloads {
            let fully = decode_update_record_fully(Bytes::from(payload.clone()));
            let decoded = decode_update_record(payload, || Bytes::from(payload.clone()));
            assert_eq!(decoded, fully, "{payload:?}");
            let shortcut = plain_ack(payload).is_some();
            assert_eq!(shortcut, *payload == ack, "{payload:?}");
        }
        assert_eq!(
            decode_update_record(&ack, || unreachable!()),
            Ok(DecodedRecord::Ack(Uuid([7; 16])))
        );
    }
}
