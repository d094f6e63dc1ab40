#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| annexa_fuzz::kernel_formats(data));
