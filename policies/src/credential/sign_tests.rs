use super::*;
use crate::identity::svid::verify::ecdsa_der;

#[test]
fn ecdsa_der_and_raw_are_inverse() {
    for sig in [[0x80u8; 64], [1; 64], {
        let mut z = [0u8; 64];
        z[31] = 5;
        z[63] = 0x90;
        z
    }] {
        let der = ecdsa_der(&sig).unwrap();
        assert_eq!(ecdsa_raw(&der, 32).unwrap(), sig.to_vec());
    }
    assert_eq!(ecdsa_raw(&[0x30, 0x03, 0x02, 0x01, 0x01], 32), None);
    assert_eq!(ecdsa_raw(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00], 32), None);
}
