//! Content credentials: the node's C2PA signing certificate, bound to its operator key, and the
//! C2PA manifest every pinned image carries.
//!
//! `genmint init` (or the first `genmint node`) creates a small certificate chain in the data dir:
//! a per-node CA (its key is discarded once it has signed) and an ES256 end-entity certificate whose
//! key signs the manifests. The operator key binds the certificate: it signs (EIP-191)
//! [`binding_message`] over the certificate's SHA-256 fingerprint, and every manifest carries that
//! signature in its genmint assertion. Nobody needs a C2PA trust list to check a genmint image: the
//! manifest is valid (hashes and signature), its certificate is the one the operator signed, and
//! the operator is the node the chain records.
//!
//! The manifest is the last change to the file: the pipeline marks the pixels with the invisible
//! watermark, embeds the manifest into the PNG, then pins those bytes, so the pinned file, its CID
//! and its credentials agree. The manifest leaves the pixels alone; it names both the raw output's
//! pixel digest (the attested one) and the marked pixels' digest.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use base64::Engine;
use c2pa::{Builder, BuilderIntent, Context, DigitalSourceType, Reader, SigningAlg, ValidationState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::watermark::WatermarkTag;

/// Label of genmint's assertion in the manifest.
pub const TOKEN_ASSERTION: &str = "org.genmint.token";
/// The IPTC digital source type of every genmint image.
pub const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
/// Label of a C2PA soft-binding assertion.
pub const SOFT_BINDING: &str = "c2pa.soft-binding";
/// The soft-binding algorithm of genmint's invisible watermark: the value is its 5-byte tag.
pub const WATERMARK_BINDING_ALG: &str = "org.genmint.watermark.qim-dct.1";
/// The soft-binding algorithm of genmint's perceptual fingerprint: the value is the 64-bit dHash,
/// big-endian.
pub const FINGERPRINT_BINDING_ALG: &str = "org.genmint.fingerprint.dhash64.1";
/// The certificate chain (signing certificate first, then the node's CA), PEM.
pub const CERT_FILE: &str = "c2pa-cert.pem";
/// The signing certificate's private key (PKCS#8 PEM), readable by the owner only.
pub const KEY_FILE: &str = "c2pa-key.pem";
/// How long a new signing certificate is valid: C2PA readers check it against the time they read.
const CERT_YEARS: i64 = 25;
const SOFTWARE: &str = "genmint";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot create the signing certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{path} does not hold a PEM certificate chain; delete {path} and {KEY_FILE} to create new ones")]
    BadChain { path: PathBuf },
    #[error("the operator key cannot sign the certificate binding: {0}")]
    Binding(#[from] alloy::signers::Error),
    #[error("C2PA: {0}")]
    C2pa(#[from] c2pa::Error),
    #[error("the manifest's genmint assertion is unreadable: {0}")]
    Assertion(String),
}

/// What the genmint assertion in a manifest says about the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAssertion {
    pub chain_id: u64,
    pub contract: Address,
    /// The request digest, which is the token id.
    pub token_id: B256,
    pub model_hash: B256,
    /// The raw output's pixel digest, as the node attests it.
    pub pixel_digest: B256,
    /// The pixel digest of this file's pixels when they carry the invisible watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_pixel_digest: Option<B256>,
    /// The registered operator that generated the image.
    pub operator: Address,
    /// The operator's EIP-191 signature over [`binding_message`] of the signing certificate.
    pub certificate_binding: Signature,
}

/// What survives a copy and leads back to the manifest: declared as C2PA soft bindings, each over
/// the whole image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SoftBindings {
    /// The tag of the invisible watermark in the pixels, when one was embedded.
    pub watermark: Option<WatermarkTag>,
    /// The perceptual fingerprint (dHash) of the pinned pixels.
    pub fingerprint: Option<u64>,
}

impl SoftBindings {
    /// The `c2pa.soft-binding` assertions: `alg`, and one block over the whole image whose
    /// `value` is the base64 of the binding's bytes.
    fn assertions(&self) -> Vec<c2pa::assertions::SoftBinding> {
        let tag =
            self.watermark.map(|tag| (WATERMARK_BINDING_ALG, "genmint invisible watermark", tag.0.to_vec()));
        let fingerprint = self.fingerprint.map(|hash| {
            (FINGERPRINT_BINDING_ALG, "genmint perceptual fingerprint", hash.to_be_bytes().to_vec())
        });
        [tag, fingerprint]
            .into_iter()
            .flatten()
            .map(|(alg, name, bytes)| {
                let mut binding = c2pa::assertions::SoftBinding::default();
                binding.alg = Some(alg.to_owned());
                binding.name = Some(name.to_owned());
                binding.blocks = vec![c2pa::assertions::SoftBindingBlock {
                    scope: c2pa::assertions::SoftBindingScope::default(),
                    value: base64::engine::general_purpose::STANDARD.encode(bytes),
                }];
                binding
            })
            .collect()
    }
}

/// The text an operator signs to bind a C2PA signing certificate to itself.
pub fn binding_message(certificate_sha256: &B256, operator: Address) -> String {
    format!("genmint content credentials v1\ncertificate sha256: {certificate_sha256}\noperator: {operator}")
}

/// The node's signing certificate and key, and the operator's binding of them.
pub struct Credentials {
    cert_chain_pem: String,
    key_pem: String,
    fingerprint: B256,
    operator: Address,
    binding: Signature,
}

impl Credentials {
    /// Loads the signing certificate from `data_dir`, creating one first if there is none; says
    /// whether it was created.
    pub fn load_or_create(
        data_dir: &Path,
        operator: &PrivateKeySigner,
    ) -> Result<(Self, bool), CredentialsError> {
        let (cert_path, key_path) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
        let created = !cert_path.exists() || !key_path.exists();
        if created {
            let (chain, key) = new_certificate_chain(operator.address())?;
            write_private(&key_path, &key)?;
            std::fs::write(&cert_path, chain)
                .map_err(|source| CredentialsError::Io { path: cert_path.clone(), source })?;
        }
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|source| CredentialsError::Io { path: path.to_owned(), source })
        };
        let (cert_chain_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
        let fingerprint =
            leaf_fingerprint(&cert_chain_pem).ok_or(CredentialsError::BadChain { path: cert_path })?;
        let binding =
            operator.sign_message_sync(binding_message(&fingerprint, operator.address()).as_bytes())?;
        Ok((Self { cert_chain_pem, key_pem, fingerprint, operator: operator.address(), binding }, created))
    }

    /// SHA-256 of the signing certificate (DER).
    pub fn fingerprint(&self) -> B256 {
        self.fingerprint
    }

    /// The genmint assertion for one image of this node.
    pub fn assertion(
        &self,
        chain_id: u64,
        contract: Address,
        token_id: B256,
        model_hash: B256,
        pixel_digest: B256,
        marked_pixel_digest: Option<B256>,
    ) -> TokenAssertion {
        TokenAssertion {
            chain_id,
            contract,
            token_id,
            model_hash,
            pixel_digest,
            marked_pixel_digest,
            operator: self.operator,
            certificate_binding: self.binding,
        }
    }

    /// Returns `png` with a signed C2PA manifest embedded: created by genmint from trained
    /// algorithmic media, carrying `token` and the soft bindings.
    pub fn embed(
        &self,
        png: &[u8],
        token: &TokenAssertion,
        soft: &SoftBindings,
    ) -> Result<Vec<u8>, CredentialsError> {
        let signer = c2pa::create_signer::from_keys(
            self.cert_chain_pem.as_bytes(),
            self.key_pem.as_bytes(),
            SigningAlg::Es256,
            None,
        )?;
        let definition = serde_json::json!({
            "title": format!("genmint {}", token.token_id),
            "claim_generator_info": [{ "name": SOFTWARE, "version": env!("CARGO_PKG_VERSION") }],
        });
        let mut builder = Builder::from_context(Context::new()).with_definition(definition.to_string())?;
        builder.set_intent(BuilderIntent::Create(DigitalSourceType::TrainedAlgorithmicMedia));
        builder.add_action(serde_json::json!({
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": { "name": SOFTWARE, "version": env!("CARGO_PKG_VERSION") },
        }))?;
        builder.add_assertion(TOKEN_ASSERTION, token)?;
        for binding in soft.assertions() {
            builder.add_assertion(SOFT_BINDING, &binding)?;
        }
        let mut signed = Cursor::new(Vec::with_capacity(png.len() + 16 * 1024));
        builder.sign(signer.as_ref(), "image/png", &mut Cursor::new(png), &mut signed)?;
        Ok(signed.into_inner())
    }
}

/// What a genmint image's manifest says, read back from the file.
#[derive(Debug, Clone)]
pub struct ReadCredentials {
    /// The manifest's hashes and signature check out (the signer need not be on a C2PA trust list).
    pub valid: bool,
    /// C2PA failure codes, other than "signer not on a trust list".
    pub failures: Vec<String>,
    /// The `c2pa.created` action's digital source type and software agent, when there is one.
    pub created_source_type: Option<String>,
    pub created_by: Option<String>,
    pub token: Option<TokenAssertion>,
    /// SHA-256 of the signing certificate.
    pub certificate_sha256: Option<B256>,
    /// The soft bindings the manifest declares, as (alg, base64 value).
    pub soft_bindings: Vec<(String, String)>,
}

/// Reads and validates the C2PA manifest of a PNG; `Ok(None)` when the file carries none.
pub fn read(png: &[u8]) -> Result<Option<ReadCredentials>, CredentialsError> {
    let reader = match Reader::from_context(Context::new()).with_stream("image/png", Cursor::new(png)) {
        Ok(reader) => reader,
        Err(c2pa::Error::JumbfNotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(manifest) = reader.active_manifest() else { return Ok(None) };
    let failures = reader
        .validation_results()
        .and_then(|results| results.active_manifest())
        .map(|codes| {
            codes
                .failure()
                .iter()
                .map(|status| status.code().to_owned())
                .filter(|code| code != c2pa::validation_status::SIGNING_CREDENTIAL_UNTRUSTED)
                .collect()
        })
        .unwrap_or_default();
    let created = manifest.find_assertion::<serde_json::Value>("c2pa.actions.v2").ok().and_then(|actions| {
        actions["actions"].as_array()?.iter().find(|a| a["action"] == "c2pa.created").cloned()
    });
    let token = match manifest.find_assertion::<TokenAssertion>(TOKEN_ASSERTION) {
        Ok(token) => Some(token),
        Err(c2pa::Error::ClaimMissing { .. } | c2pa::Error::AssertionMissing { .. }) => None,
        Err(e) => return Err(CredentialsError::Assertion(e.to_string())),
    };
    let soft_bindings = manifest
        .assertions()
        .iter()
        .filter(|assertion| assertion.label().starts_with(SOFT_BINDING))
        .filter_map(|assertion| assertion.to_assertion::<c2pa::assertions::SoftBinding>().ok())
        .flat_map(|binding| {
            let alg = binding.alg.clone().unwrap_or_default();
            binding.blocks.into_iter().map(move |block| (alg.clone(), block.value))
        })
        .collect();
    Ok(Some(ReadCredentials {
        soft_bindings,
        valid: matches!(reader.validation_state(), ValidationState::Valid | ValidationState::Trusted),
        failures,
        created_source_type: created
            .as_ref()
            .and_then(|a| a["digitalSourceType"].as_str().map(str::to_owned)),
        created_by: created.as_ref().and_then(|a| a["softwareAgent"]["name"].as_str().map(str::to_owned)),
        token,
        certificate_sha256: manifest.signature_info().and_then(|info| leaf_fingerprint(info.cert_chain())),
    }))
}

/// SHA-256 of the first certificate in a PEM chain.
fn leaf_fingerprint(chain_pem: &str) -> Option<B256> {
    let leaf = pem::parse_many(chain_pem).ok()?.into_iter().find(|block| block.tag() == "CERTIFICATE")?;
    Some(B256::from(<[u8; 32]>::from(Sha256::digest(leaf.contents()))))
}

/// A fresh CA and signing certificate for `operator`: (chain PEM, signing key PEM).
fn new_certificate_chain(operator: Address) -> Result<(String, String), CredentialsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };
    let now = time::OffsetDateTime::now_utc();
    let validity = |params: &mut CertificateParams| {
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365 * CERT_YEARS);
    };

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::OrganizationName, SOFTWARE);
    ca.distinguished_name.push(DnType::CommonName, format!("genmint node CA {operator}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::OrganizationName, SOFTWARE);
    leaf.distinguished_name.push(DnType::CommonName, format!("genmint node {operator}"));
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    leaf.use_authority_key_identifier_extension = true;
    validity(&mut leaf);
    let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    Ok((format!("{}{}", leaf_cert.pem(), ca_cert.pem()), key.serialize_pem()))
}

fn write_private(path: &Path, text: &str) -> Result<(), CredentialsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| CredentialsError::Io { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::png;
    use genmint_model_runtime::Rgb8Image;

    fn image() -> Rgb8Image {
        Rgb8Image { width: 8, height: 8, pixels: (0..8 * 8 * 3).map(|i| (i * 7 % 256) as u8).collect() }
    }

    #[test]
    fn embedded_manifest_reads_back_with_the_token_and_a_bound_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let operator = PrivateKeySigner::random();
        let (credentials, created) = Credentials::load_or_create(dir.path(), &operator).unwrap();
        assert!(created);
        let (again, created) = Credentials::load_or_create(dir.path(), &operator).unwrap();
        assert!(!created);
        assert_eq!(again.fingerprint(), credentials.fingerprint());

        let raw = png::encode(&image()).unwrap();
        let token = credentials.assertion(
            31337,
            Address::repeat_byte(1),
            B256::repeat_byte(2),
            B256::repeat_byte(3),
            B256::from(image().pixel_digest()),
            None,
        );
        let tag = WatermarkTag([1, 2, 3, 4, 5]);
        let soft = SoftBindings { watermark: Some(tag), fingerprint: Some(0x0102_0304_0506_0708) };
        let signed = credentials.embed(&raw, &token, &soft).unwrap();
        assert_eq!(png::decode(&signed).unwrap(), image(), "the manifest leaves the pixels alone");

        let back = read(&signed).unwrap().expect("a manifest");
        assert!(back.valid, "{:?}", back.failures);
        assert_eq!(back.created_source_type.as_deref(), Some(TRAINED_ALGORITHMIC_MEDIA));
        assert_eq!(back.created_by.as_deref(), Some("genmint"));
        assert_eq!(back.token.as_ref(), Some(&token));
        assert_eq!(back.certificate_sha256, Some(credentials.fingerprint()));
        assert_eq!(
            back.soft_bindings,
            [
                (WATERMARK_BINDING_ALG.to_owned(), "AQIDBAU=".to_owned()),
                (FINGERPRINT_BINDING_ALG.to_owned(), "AQIDBAUGBwg=".to_owned())
            ],
            "both soft bindings, in the C2PA form"
        );
        let signer = token
            .certificate_binding
            .recover_address_from_msg(binding_message(&credentials.fingerprint(), operator.address()))
            .unwrap();
        assert_eq!(signer, operator.address());

        assert!(read(&raw).unwrap().is_none(), "a plain PNG has no manifest");
        // Change one byte of the image data: the manifest's hash of the file no longer matches.
        let mut broken = signed.clone();
        let at = broken.windows(4).position(|w| w == b"IDAT").unwrap() + 6;
        broken[at] ^= 0x55;
        assert!(
            !matches!(read(&broken), Ok(Some(ReadCredentials { valid: true, .. }))),
            "a changed byte invalidates it"
        );
    }
}
