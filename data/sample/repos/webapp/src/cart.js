// Shopping cart kept in localStorage.
const KEY = "cart.v2";

export function loadCart() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) ?? [];
  } catch {
    return [];
  }
}

export function addToCart(cart, productId, quantity = 1) {
  const existing = cart.find((line) => line.productId === productId);
  if (existing) {
    existing.quantity += quantity;
  } else {
    cart.push({ productId, quantity });
  }
  localStorage.setItem(KEY, JSON.stringify(cart));
  return cart;
}
