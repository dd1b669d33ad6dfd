//! The one place stored data is decompressed, always with a cap on the output.

use std::io::{self, Read};

use crate::error::{LakeError, LakeResult};

/// A reader that fails once more than `limit` bytes come out of it.
pub struct Bounded<R> {
    inner: R,
    remaining: u64,
    object: String,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(out)?;
        self.remaining = self.remaining.checked_sub(read as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} decompresses to more than the allowed size", self.object),
            )
        })?;
        Ok(read)
    }
}

/// Returns a zstd decoder over `reader` that yields at most `limit` bytes.
pub fn bounded_zstd<R: Read>(
    reader: R,
    limit: u64,
    object: &str,
) -> LakeResult<Bounded<zstd::Decoder<'static, io::BufReader<R>>>> {
    let decoder = zstd::Decoder::new(reader).map_err(|error| {
        LakeError::format(format!("failed to start decoding {object}: {error}"))
    })?;
    Ok(Bounded { inner: decoder, remaining: limit, object: object.to_string() })
}

/// Returns a reader that yields at most `limit` bytes of `reader` (for gzip and other decoders).
pub fn bounded<R: Read>(reader: R, limit: u64, object: &str) -> Bounded<R> {
    Bounded { inner: reader, remaining: limit, object: object.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_bomb_is_refused() {
        let compressed = zstd::encode_all(&vec![0u8; 1 << 20][..], 3).expect("compress");
        let mut out = Vec::new();
        let error = bounded_zstd(&compressed[..], 1000, "bomb.zst")
            .expect("decoder")
            .read_to_end(&mut out)
            .expect_err("over the limit");
        assert!(error.to_string().contains("bomb.zst"), "{error}");
    }
}
