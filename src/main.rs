fn main() {
    println!("sendercheck");
}
