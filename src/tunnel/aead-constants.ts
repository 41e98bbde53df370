/** ChaCha20-Poly1305's tag, after every ciphertext. */
export const AEAD_TAG_BYTES = 16;
