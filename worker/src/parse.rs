//! Streaming CSV reading with `csv-async`: one record in memory at a time,
//! whatever the file size.
//!
//! Records are read as bytes and checked for UTF-8 here rather than by the
//! CSV reader, so that the error can say which line and column is broken and
//! what to do about it.

use std::pin::Pin;
use std::task::{Context, Poll};

use csv_async::{AsyncReader, AsyncReaderBuilder, ByteRecord};
use tokio::io::{AsyncRead, ReadBuf};

/// A file that cannot be read as CSV. Each message is written for the
/// customer's admin.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Zero bytes, or only blank lines.
    #[error("the file is empty: expected one header row followed by data rows")]
    Empty,
    /// Bytes that are not UTF-8.
    #[error(
        "the file is not UTF-8: line {line}, column {column} contains invalid bytes; \
         export the file as \"CSV UTF-8\""
    )]
    NotUtf8 {
        /// Line of the record.
        line: u64,
        /// 1-based field position.
        column: usize,
    },
    /// The bytes are another format (a spreadsheet, an archive, UTF-16).
    #[error(
        "the file is {format}, not a CSV text file; save or export it as \"CSV UTF-8\" \
         and upload that file itself"
    )]
    NotCsv {
        /// What the file's first bytes say it is.
        format: &'static str,
    },
    /// The CSV structure is broken.
    #[error("the file is not valid CSV near line {line}: {message}")]
    Malformed {
        /// Line where the reader gave up.
        line: u64,
        /// The reader's explanation.
        message: String,
    },
    /// The file goes over one of the configured `[limits]`.
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    /// Reading the object failed (network, storage): worth retrying.
    #[error("reading the file failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bounds on what one file may hold (`[limits]` in the configuration).
/// Each protects the daemon's memory or the database from a file that is
/// broken or not a CSV export at all; going over one fails the upload with
/// the limit named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest object, in bytes.
    pub max_object_bytes: u64,
    /// Most data rows in one file.
    pub max_rows: u64,
    /// Longest record (one row, with the line breaks inside quoted fields),
    /// in bytes. The reader stops at this many bytes of one record, so a
    /// file without line ends is never held in memory whole.
    pub max_record_bytes: u64,
    /// Longest single field, in bytes.
    pub max_field_bytes: usize,
    /// Most columns in the header or in any row.
    pub max_columns: usize,
    /// Most row problems (errors and warnings) kept per upload, the first by
    /// line; the rest are counted, not stored. Unlike the other limits,
    /// going over this one does not fail the upload.
    pub max_row_problems: u64,
}

impl Default for Limits {
    /// Generous for any HR export (a 10,000,000-row file is about 1 GiB; a
    /// person's row under 1 KiB), small enough that no file can exhaust the
    /// daemon: a record is at most 1 MiB in memory.
    fn default() -> Self {
        Limits {
            max_object_bytes: 4 << 30,
            max_rows: 20_000_000,
            max_record_bytes: 1 << 20,
            max_field_bytes: 64 << 10,
            max_columns: 1_000,
            max_row_problems: 10_000,
        }
    }
}

/// Which limit a file went over, and where: the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The object is larger than `limits.max_object_bytes`.
    #[error(
        "the file is larger than the limit of {limit} bytes (limits.max_object_bytes); \
         split it or ask for the limit to be raised"
    )]
    ObjectBytes {
        /// The limit.
        limit: u64,
    },
    /// More rows than `limits.max_rows`.
    #[error("the file has more than {limit} data rows, the limit (limits.max_rows)")]
    Rows {
        /// The limit.
        limit: u64,
    },
    /// One record longer than `limits.max_record_bytes`.
    #[error(
        "a row starting on line {line} is longer than the limit of {limit} bytes \
         (limits.max_record_bytes); is this a CSV export, and are its quotes balanced?"
    )]
    RecordBytes {
        /// Line where the record starts.
        line: u64,
        /// The limit.
        limit: u64,
    },
    /// One field longer than `limits.max_field_bytes`.
    #[error(
        "line {line}, column {column} is longer than the limit of {limit} bytes \
         (limits.max_field_bytes)"
    )]
    FieldBytes {
        /// Line of the record.
        line: u64,
        /// 1-based field position.
        column: usize,
        /// The limit.
        limit: usize,
    },
    /// More columns than `limits.max_columns`.
    #[error(
        "line {line} has {columns} columns, more than the limit of {limit} (limits.max_columns)"
    )]
    Columns {
        /// Line of the record.
        line: u64,
        /// Columns found.
        columns: usize,
        /// The limit.
        limit: usize,
    },
}

impl ParseError {
    /// Whether a retry could succeed (only I/O problems).
    pub fn is_transient(&self) -> bool {
        matches!(self, ParseError::Io(_))
    }
}

/// A CSV stream positioned after its header.
pub struct CsvStream<R> {
    rdr: AsyncReader<NormaliseNewlines<R>>,
    header: Vec<String>,
    record: ByteRecord,
    /// Reader line after the last record, and that record's embedded line breaks.
    last: (u64, u64),
    limits: Limits,
    rows: u64,
}

impl<R: AsyncRead + Unpin + Send> CsvStream<R> {
    /// [`CsvStream::open_with`] the default [`Limits`].
    pub async fn open(reader: R) -> Result<Self, ParseError> {
        Self::open_with(reader, Limits::default()).await
    }

    /// Reads the header row. Exactly one header row is expected; a UTF-8 byte
    /// order mark is accepted and removed. Reading anything beyond `limits`
    /// fails with [`ParseError::Limit`].
    pub async fn open_with(reader: R, limits: Limits) -> Result<Self, ParseError> {
        let mut rdr = AsyncReaderBuilder::new()
            .has_headers(false)
            // Ragged rows are reported per row (with their line) instead of
            // failing the whole file.
            .flexible(true)
            .create_reader(NormaliseNewlines::with_limits(reader, limits));
        let mut record = ByteRecord::new();
        if !read(&mut rdr, &mut record).await? {
            return Err(ParseError::Empty);
        }
        if let Some(format) = record.get(0).and_then(binary_format) {
            return Err(ParseError::NotCsv { format });
        }
        check_shape(&record, 1, &limits)?;
        let mut header = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            let field = if i == 0 {
                field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
            } else {
                field
            };
            let text = std::str::from_utf8(field).map_err(|_| ParseError::NotUtf8 {
                line: 1,
                column: i + 1,
            })?;
            header.push(text.to_string());
        }
        if header.iter().all(|h| h.trim().is_empty()) {
            return Err(ParseError::Empty);
        }
        let mut stream = CsvStream {
            rdr,
            header,
            record,
            last: (0, 0),
            limits,
            rows: 0,
        };
        stream.last = (stream.rdr.position().line(), stream.embedded_newlines());
        stream.check_complete_if_done()?;
        Ok(stream)
    }

    fn embedded_newlines(&self) -> u64 {
        self.record
            .as_slice()
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
    }

    fn check_complete_if_done(&self) -> Result<(), ParseError> {
        if self.rdr.is_done() {
            self.check_complete()
        } else {
            Ok(())
        }
    }

    /// At the end of the file: a quote that was opened and never closed makes
    /// the CSV reader swallow everything after it into one field. Accepting
    /// that would "succeed" with the rest of the file missing, and then
    /// deactivate everyone in it. In valid CSV every quote character comes
    /// in pairs; an odd count with a last record that swallowed line breaks
    /// is that failure. (A stray quote in an unquoted field, which some
    /// exports produce, leaves no swallowed line breaks and is accepted.)
    fn check_complete(&self) -> Result<(), ParseError> {
        let (end, embedded) = self.last;
        if self.rdr.get_ref().quotes % 2 == 1 && embedded > 0 {
            // The swallowing record has no newline of its own after it.
            let line = end.saturating_sub(embedded);
            return Err(ParseError::Malformed {
                line,
                message: format!(
                    "a quoted field that starts on line {line} is never closed, so the rest of the file \
                     ({embedded} more line(s)) would be read as one value; fix or remove the stray quote"
                ),
            });
        }
        Ok(())
    }

    /// The header row as read.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The next data row, as its first line number and its fields. Blank
    /// lines are skipped by the reader.
    pub async fn next_row(&mut self) -> Result<Option<(u64, Vec<&str>)>, ParseError> {
        if !read(&mut self.rdr, &mut self.record).await? {
            self.check_complete()?;
            return Ok(None);
        }
        // The record's own start position is unreliable (it points at any
        // blank lines skipped before it), but the reader's position after the
        // record is exact: the line after its terminating newline, which
        // `NormaliseNewlines` guarantees. Newlines inside quoted fields are
        // kept in the field bytes, so they can be subtracted.
        let embedded = self.embedded_newlines();
        let end = self.rdr.position().line();
        let line = end.saturating_sub(1 + embedded);
        self.last = (end, embedded);
        self.rows += 1;
        if self.rows > self.limits.max_rows {
            return Err(LimitExceeded::Rows {
                limit: self.limits.max_rows,
            }
            .into());
        }
        check_shape(&self.record, line, &self.limits)?;
        let mut fields = Vec::with_capacity(self.record.len());
        for (i, f) in self.record.iter().enumerate() {
            fields.push(std::str::from_utf8(f).map_err(|_| ParseError::NotUtf8 {
                line,
                column: i + 1,
            })?);
        }
        Ok(Some((line, fields)))
    }
}

/// The format whose signature `first` (the first field of the first row)
/// starts with, for files uploaded by mistake: their bytes would otherwise
/// be reported as "not UTF-8" or as a header missing every column.
fn binary_format(first: &[u8]) -> Option<&'static str> {
    const SIGNATURES: [(&[u8], &str); 6] = [
        (b"\x1f\x8b", "gzip-compressed"),
        (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)"),
        (b"\xd0\xcf\x11\xe0", "a legacy Excel (.xls) workbook"),
        (b"%PDF", "a PDF document"),
        (b"\xff\xfe", "UTF-16 text"),
        (b"\xfe\xff", "UTF-16 text"),
    ];
    SIGNATURES
        .iter()
        .find(|(sig, _)| first.starts_with(sig))
        .map(|(_, f)| *f)
}

/// Columns and field lengths of one record against `limits`.
fn check_shape(record: &ByteRecord, line: u64, limits: &Limits) -> Result<(), LimitExceeded> {
    if record.len() > limits.max_columns {
        return Err(LimitExceeded::Columns {
            line,
            columns: record.len(),
            limit: limits.max_columns,
        });
    }
    if let Some(i) = record.iter().position(|f| f.len() > limits.max_field_bytes) {
        return Err(LimitExceeded::FieldBytes {
            line,
            column: i + 1,
            limit: limits.max_field_bytes,
        });
    }
    Ok(())
}

/// Rewrites `\r\n` and lone `\r` line ends to `\n`.
///
/// The CSV reader counts lines by `\n` only and, for `\r\n` files, reports
/// a record as starting on the previous line; files from old spreadsheet
/// exports that end lines with `\r` alone would report every row as line 1.
/// Normalising first makes every reported line number match what the
/// customer sees in an editor. Inside quoted fields the same rewrite turns
/// Windows line breaks into plain ones, which is harmless for names.
pub struct NormaliseNewlines<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    after_cr: bool,
    /// Last byte handed out, to add a final `\n` when the file lacks one.
    last: Option<u8>,
    done: bool,
    /// Quote characters seen, for the unterminated-quote check.
    quotes: u64,
    limits: Limits,
    /// Bytes read from `inner`, for `limits.max_object_bytes`.
    read: u64,
    /// Bytes of the record being read, for `limits.max_record_bytes`.
    record: u64,
    /// Where the record being read is, as the CSV reader sees it (a quote
    /// opens a quoted field only at the start of a field: `O"Brien` is text).
    csv: CsvState,
    /// Line ends handed out, for the line of a record over the limit.
    lines: u64,
    record_line: u64,
}

impl<R> NormaliseNewlines<R> {
    /// Wraps `inner`, with the default [`Limits`].
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, Limits::default())
    }

    /// Wraps `inner`; reading past `limits.max_object_bytes` in all, or
    /// `limits.max_record_bytes` in one record, is an error (see
    /// [`LimitExceeded`]), so the CSV reader never buffers more than that.
    pub fn with_limits(inner: R, limits: Limits) -> Self {
        NormaliseNewlines {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            after_cr: false,
            last: None,
            done: false,
            quotes: 0,
            limits,
            read: 0,
            record: 0,
            csv: CsvState::FieldStart,
            lines: 0,
            record_line: 1,
        }
    }

    /// Counts one byte handed out; the error when a limit is passed.
    fn count(&mut self, b: u8) -> Result<(), LimitExceeded> {
        use CsvState::*;
        if b == b'\n' {
            self.lines += 1;
        }
        self.csv = match (self.csv, b) {
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) | (QuoteInQuoted, b'"') => Quoted,
            (FieldStart, b'"') => Quoted,
            (_, b',') => FieldStart,
            (_, b'\n') => {
                self.record = 0;
                self.record_line = self.lines + 1;
                self.csv = FieldStart;
                return Ok(());
            }
            _ => Unquoted,
        };
        self.record += 1;
        if self.record > self.limits.max_record_bytes {
            return Err(LimitExceeded::RecordBytes {
                line: self.record_line,
                limit: self.limits.max_record_bytes,
            });
        }
        Ok(())
    }
}

/// The CSV reader's state, as far as record boundaries go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvState {
    /// At the start of a field (a quote here opens a quoted field).
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field (line ends belong to the field).
    Quoted,
    /// A quote inside a quoted field: closes it, or doubles into a quote.
    QuoteInQuoted,
}

/// A limit passed while reading, carried through the CSV reader as an I/O
/// error of kind `InvalidData` and turned back into [`ParseError::Limit`].
fn limit_error(e: LimitExceeded) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl<R: AsyncRead + Unpin> AsyncRead for NormaliseNewlines<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.start == this.end {
                let mut rb = ReadBuf::new(&mut this.buf);
                match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {}
                    other => return other,
                }
                let n = rb.filled().len();
                this.read += n as u64;
                if this.read > this.limits.max_object_bytes {
                    return Poll::Ready(Err(limit_error(LimitExceeded::ObjectBytes {
                        limit: this.limits.max_object_bytes,
                    })));
                }
                if n == 0 {
                    // End of input: terminate the last record, so that every
                    // record ends with a newline (see `next_row`).
                    if !this.done && this.last.is_some_and(|b| b != b'\n') && out.remaining() > 0 {
                        out.put_slice(b"\n");
                    }
                    this.done = true;
                    return Poll::Ready(Ok(()));
                }
                this.start = 0;
                this.end = n;
            }
            let before = out.filled().len();
            while this.start < this.end && out.remaining() > 0 {
                // A run of bytes that end nothing and open nothing goes out
                // at once: each would leave a quoted field quoted and make
                // anything else unquoted text, and count towards the record.
                // (Byte by byte this loop was a tenth of an import's CPU.)
                let avail = (this.end - this.start).min(out.remaining());
                let run = this.buf[this.start..this.start + avail]
                    .iter()
                    .position(|&b| matches!(b, b'\r' | b'\n' | b'"' | b','))
                    .unwrap_or(avail);
                if run > 0 {
                    out.put_slice(&this.buf[this.start..this.start + run]);
                    this.start += run;
                    this.after_cr = false;
                    if this.csv != CsvState::Quoted {
                        this.csv = CsvState::Unquoted;
                    }
                    this.record += run as u64;
                    if this.record > this.limits.max_record_bytes {
                        return Poll::Ready(Err(limit_error(LimitExceeded::RecordBytes {
                            line: this.record_line,
                            limit: this.limits.max_record_bytes,
                        })));
                    }
                    continue;
                }
                let b = this.buf[this.start];
                this.start += 1;
                let emitted = match b {
                    b'\r' => {
                        out.put_slice(b"\n");
                        this.after_cr = true;
                        Some(b'\n')
                    }
                    b'\n' if this.after_cr => {
                        this.after_cr = false;
                        None
                    }
                    _ => {
                        this.quotes += u64::from(b == b'"');
                        out.put_slice(&[b]);
                        this.after_cr = false;
                        Some(b)
                    }
                };
                if let Some(e) = emitted
                    && let Err(limit) = this.count(e)
                {
                    return Poll::Ready(Err(limit_error(limit)));
                }
            }
            if out.filled().len() > before {
                this.last = out.filled().last().copied();
            }
            // Everything consumed may have been the `\n` of a `\r\n`: read on.
            if out.filled().len() > before || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

async fn read<R: AsyncRead + Unpin + Send>(
    rdr: &mut AsyncReader<R>,
    record: &mut ByteRecord,
) -> Result<bool, ParseError> {
    match rdr.read_byte_record(record).await {
        Ok(more) => Ok(more),
        Err(e) => {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            match e.into_kind() {
                csv_async::ErrorKind::Io(io) => {
                    match io.get_ref().and_then(|e| e.downcast_ref::<LimitExceeded>()) {
                        Some(limit) => Err(ParseError::Limit(limit.clone())),
                        None => Err(ParseError::Io(io)),
                    }
                }
                other => Err(ParseError::Malformed {
                    line,
                    message: format!("{other:?}"),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rows(bytes: &[u8]) -> Result<(Vec<String>, Vec<(u64, Vec<String>)>), ParseError> {
        let mut s = CsvStream::open(bytes).await?;
        let header = s.header().to_vec();
        let mut out = Vec::new();
        while let Some((line, fields)) = s.next_row().await? {
            out.push((line, fields.iter().map(|f| f.to_string()).collect()));
        }
        Ok((header, out))
    }

    #[tokio::test]
    async fn bom_is_removed_from_first_header() {
        let (h, r) = rows(b"\xEF\xBB\xBFemail,name\r\na@x.io,A\r\n")
            .await
            .unwrap();
        assert_eq!(h, vec!["email", "name"]);
        assert_eq!(r, vec![(2, vec!["a@x.io".to_string(), "A".to_string()])]);
    }

    #[tokio::test]
    async fn line_numbers_account_for_embedded_newlines() {
        let (_, r) = rows(b"email,note\na@x.io,\"two\nlines\"\nb@x.io,x\n")
            .await
            .unwrap();
        assert_eq!(r[0].0, 2);
        assert_eq!(r[0].1[1], "two\nlines");
        assert_eq!(r[1].0, 4);
    }

    #[tokio::test]
    async fn latin1_bytes_fail_with_line_and_column() {
        let err = rows(b"email,name\na@x.io,Ren\xe9\n").await.unwrap_err();
        assert!(
            matches!(err, ParseError::NotUtf8 { line: 2, column: 2 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("CSV UTF-8"));
    }

    #[tokio::test]
    async fn crlf_and_lone_cr_files_report_editor_line_numbers() {
        for bytes in [
            &b"email,name\r\na@x.io,A\r\n\r\nb@x.io,B\r\n"[..],
            &b"email,name\ra@x.io,A\r\rb@x.io,B\r"[..],
        ] {
            let (h, r) = rows(bytes).await.unwrap();
            assert_eq!(h, vec!["email", "name"]);
            let lines: Vec<u64> = r.iter().map(|(l, _)| *l).collect();
            assert_eq!(lines, vec![2, 4], "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[tokio::test]
    async fn runs_of_ordinary_bytes_come_out_as_they_went_in_with_line_ends_normalised() {
        use tokio::io::AsyncReadExt;
        // Seeded bytes from an alphabet of ordinary and special bytes, read
        // whole and one byte at a time: the run fast path must give what a
        // byte-by-byte rewrite gives.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200 {
            let mut data = Vec::new();
            for _ in 0..(seed % 300) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.push(b"ab,\"\r\n x"[(seed % 8) as usize]);
            }
            let mut want = Vec::new();
            let mut after_cr = false;
            for &b in &data {
                match b {
                    b'\r' => {
                        want.push(b'\n');
                        after_cr = true;
                    }
                    b'\n' if after_cr => after_cr = false,
                    _ => {
                        want.push(b);
                        after_cr = false;
                    }
                }
            }
            if want.last().is_some_and(|&b| b != b'\n') {
                want.push(b'\n');
            }
            let mut whole = Vec::new();
            NormaliseNewlines::new(&data[..])
                .read_to_end(&mut whole)
                .await
                .unwrap();
            assert_eq!(whole, want, "{:?}", String::from_utf8_lossy(&data));
            let mut slow = Vec::new();
            NormaliseNewlines::new(tokio_test_reader(data.clone()))
                .read_to_end(&mut slow)
                .await
                .unwrap();
            assert_eq!(slow, want, "{:?}", String::from_utf8_lossy(&data));
        }
    }

    #[tokio::test]
    async fn crlf_split_across_reads_is_one_line_end() {
        // A reader that returns one byte at a time puts every \r and \n in
        // separate reads.
        let data = b"email\r\na@x.io\r\nb@x.io\r\n".to_vec();
        let slow = tokio_test_reader(data);
        let mut s = CsvStream::open(slow).await.unwrap();
        let mut lines = vec![];
        while let Some((l, _)) = s.next_row().await.unwrap() {
            lines.push(l);
        }
        assert_eq!(lines, vec![2, 3]);
    }

    fn tokio_test_reader(data: Vec<u8>) -> impl AsyncRead + Unpin + Send {
        struct OneByte(std::collections::VecDeque<u8>);
        impl AsyncRead for OneByte {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                out: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                if let Some(b) = self.0.pop_front() {
                    out.put_slice(&[b]);
                }
                Poll::Ready(Ok(()))
            }
        }
        OneByte(data.into())
    }

    #[tokio::test]
    async fn an_unterminated_quote_that_swallows_the_rest_fails_naming_its_line() {
        let err = rows(b"email,name\na@x.io,A\nb@x.io,\"Bob\nc@x.io,C\nd@x.io,D\n")
            .await
            .unwrap_err();
        match err {
            ParseError::Malformed { line, message } => {
                assert_eq!(line, 3);
                assert!(message.contains("never closed"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn quoted_newlines_and_stray_quotes_in_unquoted_fields_are_accepted() {
        let (_, r) = rows(b"email,note\na@x.io,\"line1\nline2\"\nb@x.io,5\" screen\n")
            .await
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].1[1], "5\" screen");
    }

    #[tokio::test]
    async fn empty_file_is_an_error() {
        assert!(matches!(rows(b"").await, Err(ParseError::Empty)));
        assert!(matches!(rows(b"\n\n").await, Err(ParseError::Empty)));
    }

    async fn rows_with(bytes: &[u8], limits: Limits) -> Result<u64, ParseError> {
        let mut s = CsvStream::open_with(bytes, limits).await?;
        let mut n = 0;
        while s.next_row().await?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    fn small() -> Limits {
        Limits {
            max_object_bytes: 10_000,
            max_rows: 3,
            max_record_bytes: 100,
            max_field_bytes: 20,
            max_columns: 4,
            max_row_problems: 10,
        }
    }

    fn limit(r: Result<u64, ParseError>) -> LimitExceeded {
        match r {
            Err(ParseError::Limit(l)) => l,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_file_within_every_limit_reads_whole() {
        let file = b"id,email\n1,a@x.io\n2,b@x.io\n3,\"c\nd\"\n";
        assert_eq!(rows_with(file, small()).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn more_rows_than_the_limit_fail_naming_max_rows() {
        let l = limit(rows_with(b"id\n1\n2\n3\n4\n", small()).await);
        assert_eq!(l, LimitExceeded::Rows { limit: 3 });
        assert!(l.to_string().contains("limits.max_rows"), "{l}");
    }

    #[tokio::test]
    async fn a_file_without_line_ends_stops_at_the_record_limit_naming_its_line() {
        let mut file = b"id\n1\n".to_vec();
        file.extend(std::iter::repeat_n(b'x', 5_000));
        let l = limit(rows_with(&file, small()).await);
        assert_eq!(
            l,
            LimitExceeded::RecordBytes {
                line: 3,
                limit: 100
            }
        );
        assert!(l.to_string().contains("limits.max_record_bytes"), "{l}");
    }

    #[tokio::test]
    async fn an_unclosed_quote_swallowing_the_file_stops_at_the_record_limit() {
        let mut file = b"id,name\n1,\"open\n".to_vec();
        for i in 0..50 {
            file.extend(format!("{i},name\n").as_bytes());
        }
        let l = limit(rows_with(&file, small()).await);
        assert!(
            matches!(l, LimitExceeded::RecordBytes { line: 2, .. }),
            "{l:?}"
        );
    }

    #[tokio::test]
    async fn stray_quotes_inside_unquoted_fields_do_not_join_records() {
        // Each row has one quote (odd), so a quote count would see one
        // endless record; the CSV reader sees ordinary rows.
        let file = b"id,name\n1,O\"Brien\n2,5\" screen\n3,x\n";
        let limits = Limits {
            max_record_bytes: 12,
            ..small()
        };
        assert_eq!(rows_with(file, limits).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_long_field_fails_naming_its_line_and_column() {
        let file = b"id,name\n1,short\n2,a-value-far-longer-than-twenty-bytes\n";
        let l = limit(rows_with(file, small()).await);
        assert_eq!(
            l,
            LimitExceeded::FieldBytes {
                line: 3,
                column: 2,
                limit: 20
            }
        );
    }

    #[tokio::test]
    async fn too_many_columns_fail_in_the_header_or_a_row() {
        let l = limit(rows_with(b"a,b,c,d,e\n1\n", small()).await);
        assert_eq!(
            l,
            LimitExceeded::Columns {
                line: 1,
                columns: 5,
                limit: 4
            }
        );
        let l = limit(rows_with(b"a\n1,2,3,4,5,6\n", small()).await);
        assert!(
            matches!(
                l,
                LimitExceeded::Columns {
                    line: 2,
                    columns: 6,
                    ..
                }
            ),
            "{l:?}"
        );
    }

    #[tokio::test]
    async fn an_object_larger_than_the_limit_fails_while_reading() {
        let mut file = b"id\n".to_vec();
        for i in 0..3_000 {
            file.extend(format!("{i}\n").as_bytes());
        }
        let limits = Limits {
            max_rows: 1_000_000,
            ..small()
        };
        let l = limit(rows_with(&file, limits).await);
        assert_eq!(l, LimitExceeded::ObjectBytes { limit: 10_000 });
        assert!(!ParseError::Limit(l).is_transient());
    }
}
