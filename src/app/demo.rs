//! `--demo`: the demo's data, and the banner that says how to try it.

use secrecy::ExposeSecret;
use sqlx::PgPool;
use tracing::info;

use super::StartError;
use crate::config::Config;
use crate::money::{self, PinHasher};

/// `--demo`: the demo subscribers, agent, merchants and billers (which answer on `port`).
pub(super) async fn seed(pool: &PgPool, config: &Config, port: u16) -> Result<(), StartError> {
    fn demo(e: impl std::fmt::Display) -> StartError {
        StartError::Demo(e.to_string())
    }
    let pins = PinHasher::new(config.money.pin_pepper.expose_secret().as_bytes());
    let currency = &config.settings.currency;
    let created =
        money::seed_demo(pool, &pins, currency, config.settings.demo_subscribers).await.map_err(demo)?;
    info!(created, "demo subscribers seeded");
    if config.settings.demo_subscribers >= 10 && money::seed_demo_agent(pool).await.map_err(demo)? {
        info!(agent = money::DEMO_AGENT, store = money::DEMO_STORE, "demo agent seeded");
    }
    let sandbox = format!("http://127.0.0.1:{port}/sandbox");
    money::seed_demo_billers(pool, &sandbox, currency).await.map_err(demo)?;
    if config.settings.demo_subscribers >= 10 {
        money::seed_demo_merchants(pool, currency).await.map_err(demo)?;
    }
    Ok(())
}

/// The code the banner's journeys dial: the wallet's, whatever menu file sorts first
/// (the agent menu's `*385#` would tell Amina she is not an agent).
pub(super) fn wallet_code(bundle: &crate::menu::Bundle) -> &str {
    let wallet = bundle.menus().iter().find(|m| m.service == "wallet");
    let any = || bundle.menus().iter().find_map(|m| m.codes.first());
    wallet.and_then(|m| m.codes.first()).or_else(any).map_or("*384#", String::as_str)
}

pub(super) fn banner(addr: std::net::SocketAddr, code: &str, currency: &str) -> String {
    let port = addr.port();
    let money = crate::domain::Currency::new(currency, 2);
    let mut out =
        format!("\nussd-gateway demo is up on port {port}. Demo subscribers (PIN {}):\n", money::DEMO_PIN);
    for s in money::demo_subscribers(10) {
        let name = format!("{} {}", s.first_name, s.last_name);
        out.push_str(&format!("  {}  {name:<17} {:>14}\n", s.msisdn, money.format(s.balance)));
    }
    out.push_str(&format!(
        "\nTry the balance journey as Africa's Talking would (text grows by one input per hop):\n\
         \n  for t in '' '2' '2*{pin}'; do\n    curl -s http://127.0.0.1:{port}/ussd/africastalking \\\n      \
         --data-urlencode sessionId=demo-$$ --data-urlencode 'serviceCode={code}' \\\n      \
         --data-urlencode phoneNumber=+254700000001 --data-urlencode \"text=$t\"; echo; echo ---\n  done\n\
         \nSend KES 500 to Brian with text = '1', '1*0700000002', '1*0700000002*500', '1*0700000002*500*1',\n\
         '1*0700000002*500*1*{pin}'. Any other Kenyan number (say +254711000111) is offered registration.\n",
        pin = money::DEMO_PIN
    ));
    out.push_str(
        "\nPay a shop: 9, then 1 (Buy Goods) and till 512345, or 2 (Paybill) and business 888880 with member number 123456.\n",
    );
    out.push_str(&format!(
        "\nOr open the web phone: http://127.0.0.1:{port}/phone (keypad, SMS received, the menu's map)\n"
    ));
    out.push_str(&format!(
        "\nThe SMS receipts of every transfer: curl -s http://127.0.0.1:{port}/demo/sms (add ?to=%2B254700000002 for one number)\n"
    ));
    out.push_str(
        "\nA registration's ID goes to the sandbox identity provider: one beginning 99 does not match, 88 is a duplicate\n\
         (both wait for review in the admin API), 77 is answered 3 s later; any other is verified, with an SMS.\n",
    );
    let paths: Vec<String> =
        crate::channel::ussd::Provider::ALL.iter().map(|p| format!("/ussd/{}", p.name())).collect();
    out.push_str(&format!("\nEvery aggregator format answers (README, Aggregators): {}\n", paths.join(" ")));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_banner_dials_the_wallet_not_the_first_menu_file() {
        let bundle =
            crate::menu::Bundle::load_dir(std::path::Path::new("menus")).expect("the shipped menus load");
        assert_eq!(super::wallet_code(&bundle), "*384#");
        let banner = super::banner("127.0.0.1:8080".parse().unwrap(), super::wallet_code(&bundle), "KES");
        assert!(banner.contains("'serviceCode=*384#'"), "{banner}");
        assert!(banner.contains("http://127.0.0.1:8080/phone "), "the banner shows the web phone: {banner}");
    }
}
