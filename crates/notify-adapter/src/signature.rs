//! Standard Webhooks signatures.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rosetta_domain::SigningSecret;
use sha2::Sha256;

/// The `webhook-signature` header value for one message: `v1,<base64 of HMAC-SHA256(key,
/// "{id}.{timestamp}.{body}")>`. The key is the secret's UTF-8 bytes, or for a secret written
/// `whsec_<base64>` (as Standard Webhooks libraries generate them) the decoded bytes.
///
/// Fails only if the HMAC implementation refuses the key, which HMAC-SHA256 never does.
pub fn sign(
    secret: &SigningSecret,
    id: &str,
    timestamp: &str,
    body: &str,
) -> Result<String, hmac::digest::InvalidLength> {
    let text = secret.secret().expose();
    let key = text
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification (and of its reference libraries).
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let signature =
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", r#"{"test": 2432232314}"#).expect("signs");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_plain_secret_is_used_as_its_bytes() {
        let secret = SigningSecret::parse("0123456789abcdef").expect("secret");
        let a = sign(&secret, "1", "2", "{}").expect("signs");
        let b = sign(&secret, "1", "2", "{} ").expect("signs");
        assert!(a.starts_with("v1,") && a != b);
    }
}
