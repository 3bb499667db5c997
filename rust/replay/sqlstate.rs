//! SQLSTATE codes as the replay records them (five bytes; all zero = success), and the
//! codes it assigns to failures the server did not report itself.

/// A SQLSTATE; all zero bytes = success.
pub type Code = [u8; 5];
pub const OK: Code = [0; 5];
/// connection_failure: the connection broke while the statement ran.
pub const CONNECTION_FAILURE: Code = *b"08006";
/// sqlclient_unable_to_establish_sqlconnection: connecting failed without a server error.
pub const CANNOT_CONNECT: Code = *b"08001";
/// protocol_violation: the client library refused the statement (e.g. the number of
/// logged parameters does not match the prepared statement).
pub const CLIENT_ERROR: Code = *b"08P01";

/// The SQLSTATE of `e` (the server's), or `fallback` when the server sent none.
pub fn code_of(e: &tokio_postgres::Error, fallback: Code) -> Code {
    match e.code() {
        Some(c) => {
            let b = c.code().as_bytes();
            let mut out = fallback;
            if b.len() == 5 {
                out.copy_from_slice(b);
            }
            out
        }
        None => fallback,
    }
}
